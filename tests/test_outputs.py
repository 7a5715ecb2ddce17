"""Run folders: a live run's folder is never removed by another run, a dead run's is; publishing
twice keeps the first output."""
import json
import os
import subprocess
import sys
import time

from pipeline.batch import outputs
from tests.conftest import REPO

_HOLD = ("import sys, time; from pipeline.batch.outputs import new_run_dir; "
         "print(new_run_dir(sys.argv[1], 'key'), flush=True); time.sleep(float(sys.argv[2]))")


def _run_dir_of_another_process(root, seconds):
    process = subprocess.Popen([sys.executable, "-c", _HOLD, str(root), str(seconds)],
                               cwd=REPO, stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


def test_a_live_runs_folder_is_kept_and_a_dead_runs_folder_removed(tmp_path):
    live, live_dir = _run_dir_of_another_process(tmp_path, 60)
    dead, dead_dir = _run_dir_of_another_process(tmp_path, 0)
    dead.wait(timeout=60)
    try:
        mine = outputs.new_run_dir(str(tmp_path), "key")
        assert os.path.isdir(live_dir) and os.path.isdir(mine)
        assert not os.path.exists(dead_dir) and not os.path.exists(dead_dir + ".lock")
    finally:
        live.kill()
        live.wait()
    outputs.release(mine)
    assert not os.path.exists(mine) and not os.path.exists(mine + ".lock")


def test_the_second_of_two_identical_runs_keeps_the_first_output(tmp_path):
    first, second = (outputs.new_run_dir(str(tmp_path), "key") for _ in range(2))
    for run_dir in (first, second):
        with open(os.path.join(run_dir, "data.txt"), "w") as handle:
            handle.write(run_dir)
    manifest, published = outputs.publish(first, str(tmp_path / "out"), {"run": 1, "shards": []})
    assert published and manifest == {"run": 1, "shards": []}
    manifest, published = outputs.publish(second, str(tmp_path / "out"), {"run": 2, "shards": []})
    assert not published and manifest == {"run": 1, "shards": []}
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == {"run": 1, "shards": []}
    assert (tmp_path / "out" / "data.txt").read_text() == first
    assert not os.listdir(tmp_path / outputs.RUNS_DIR)


def test_two_predict_runs_of_one_config_at_once_both_finish(faces, tiny_head, tmp_path):
    command = [sys.executable, "-m", "jobs.predict", "--model", tiny_head,
               "--data", faces, "--out", str(tmp_path / "out")]
    runs = []
    for _ in range(2):
        runs.append(subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True))
        time.sleep(1)
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    published = [name for name in os.listdir(tmp_path / "out") if not name.startswith(".")]
    assert len(published) == 1 and results[0][0].splitlines()[-1].endswith(published[0])
    assert not os.listdir(tmp_path / "out" / outputs.RUNS_DIR)


def test_the_base_is_the_newest_output_even_within_one_second(tmp_path):
    for name, created_at in (("a", 100.2), ("b", 100.7), ("c", 100.5)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({
            "config_key": "key", "created": "2026-12-01T10:00:00+0000",
            "created_at": created_at, "num_shards": 1}))
    assert outputs.find_base(str(tmp_path), "key")["key"] == "b"
    assert outputs.find_base(str(tmp_path), "other") is None
