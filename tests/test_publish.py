"""Output folders published whole: staged, listed, swapped in; kills and damage."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline import publish
from pipeline.publish import PUBLISHED, published_folder, verify_published


def _write(folder, files):
    for name, text in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)


def _contents(folder):
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if name != PUBLISHED:
                with open(path) as handle:
                    found[os.path.relpath(path, folder)] = handle.read()
    return found


def _publish(out, files, job="export"):
    with published_folder(str(out), job=job, markers=("export.json",)) as staging:
        _write(staging, files)


def _leftovers(out):
    return [name for name in os.listdir(os.path.dirname(out)) if name.startswith(".")]


def test_a_folder_is_published_with_the_list_of_its_files(tmp_path):
    out = tmp_path / "export"
    _publish(out, {"export.json": "{}", "saved_model/model.pb": "graph"})
    listed = json.loads((out / PUBLISHED).read_text())
    assert listed["job"] == "export"
    assert set(listed["files"]) == {"export.json", "saved_model/model.pb"}
    assert listed["files"]["export.json"]["bytes"] == 2
    assert verify_published(str(out))["job"] == "export"
    assert _leftovers(out) == []


def test_a_second_publish_replaces_the_whole_folder(tmp_path):
    out = tmp_path / "export"
    _publish(out, {"export.json": "A", "model_int8.tflite": "A's int8"})
    _publish(out, {"export.json": "B"})
    assert _contents(out) == {"export.json": "B"}  # A's int8 file does not stay beside B
    assert _leftovers(out) == []


def test_a_failed_block_leaves_the_previous_output_and_no_staging(tmp_path):
    out = tmp_path / "export"
    _publish(out, {"export.json": "A"})
    with pytest.raises(RuntimeError):
        with published_folder(str(out), job="export") as staging:
            _write(staging, {"export.json": "half"})
            raise RuntimeError("disk full")
    assert _contents(out) == {"export.json": "A"}
    assert _leftovers(out) == []


_KILLED_WRITER = """
import os, sys, time
from pipeline.publish import published_folder
with published_folder(sys.argv[1], job="export") as staging:
    with open(os.path.join(staging, "export.json"), "w") as handle:
        handle.write("B, half")
    open(sys.argv[2], "w").close()
    time.sleep(60)
"""


def test_a_kill_while_writing_leaves_the_previous_output_and_the_next_run_cleans_up(tmp_path):
    out, ready = tmp_path / "export", tmp_path / "ready"
    _publish(out, {"export.json": "A"})
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(out), str(ready)],
                              cwd=os.path.dirname(os.path.dirname(__file__)))
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline and writer.poll() is None:
        time.sleep(0.05)
    assert ready.exists()
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert _contents(out) == {"export.json": "A"}
    assert len(_leftovers(out)) == 1  # the dead writer's staging folder
    _publish(out, {"export.json": "C"})
    assert _contents(out) == {"export.json": "C"} and _leftovers(out) == []


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_previous_output_left_aside_by_a_kill_between_two_renames_is_put_back(tmp_path):
    out = tmp_path / "export"
    aside = tmp_path / f".export.previous-{publish.socket.gethostname()}-{_dead_pid()}-abcd1234"
    _write(str(aside), {"export.json": "A"})
    publish.check_out_dir(str(out), job="export", markers=("export.json",))
    assert _contents(out) == {"export.json": "A"} and _leftovers(out) == []


def test_the_dead_staging_of_every_output_in_a_folder_is_removed_and_an_aside_put_back(tmp_path):
    host, dead = publish.socket.gethostname(), _dead_pid()
    _publish(tmp_path / "run-a", {"export.json": "A"})
    _write(str(tmp_path / f".run-a.staging-{host}-{dead}-abcd1234"), {"export.json": "half"})
    _write(str(tmp_path / f".run.b.previous-{host}-{dead}-abcd1234"), {"export.json": "B"})
    alive = tmp_path / f".run-c.staging-{host}-{os.getpid()}-abcd1234"
    _write(str(alive), {"export.json": "writing"})
    _write(str(tmp_path / ".run-d.work"), {"checkpoint": "kept"})  # a working folder stays
    publish.remove_dead_staging(str(tmp_path))
    assert _contents(tmp_path / "run-a") == {"export.json": "A"}
    assert _contents(tmp_path / "run.b") == {"export.json": "B"}  # put back
    assert sorted(_leftovers(tmp_path / "run-a")) == [alive.name, ".run-d.work"]
    publish.remove_dead_staging(str(tmp_path / "absent"))  # a folder that is not there


def test_without_an_atomic_exchange_the_folder_is_swapped_by_two_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "_exchange", lambda a, b: False)
    out = tmp_path / "export"
    _publish(out, {"export.json": "A", "old.txt": "A"})
    _publish(out, {"export.json": "B"})
    assert _contents(out) == {"export.json": "B"} and _leftovers(out) == []


@pytest.mark.parametrize("damage", ["delete", "truncate", "flip"])
def test_a_damaged_published_file_is_named(tmp_path, damage):
    out = tmp_path / "export"
    _publish(out, {"export.json": "{}", "model.tflite": "0123456789"})
    path = out / "model.tflite"
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_text("01234")
    else:
        path.write_text("0123456780")
    with pytest.raises(ValueError, match="model.tflite: (missing|damaged)"):
        verify_published(str(out))


def test_a_folder_of_other_files_or_another_jobs_output_is_refused_before_any_work(tmp_path):
    mine = tmp_path / "photos"
    _write(str(mine), {"cat.jpg": "x"})
    with pytest.raises(ValueError, match="not an output of jobs.export"):
        _publish(mine, {"export.json": "B"})
    assert _contents(mine) == {"cat.jpg": "x"}
    head = tmp_path / "head"
    _publish(head, {"head.json": "{}"}, job="train_head")
    with pytest.raises(ValueError, match="holds the output of jobs.train_head"):
        _publish(head, {"export.json": "B"})
    assert _leftovers(head) == []


def test_an_output_written_before_publishing_existed_is_replaced(tmp_path):
    out = tmp_path / "export"
    _write(str(out), {"export.json": "old", "model_int8.tflite": "old"})
    _publish(out, {"export.json": "new"})
    assert _contents(out) == {"export.json": "new"}


def test_a_full_disk_names_the_output_not_the_staging_folder(tmp_path):
    out = tmp_path / "finetune"
    with pytest.raises(OSError) as raised:
        with published_folder(str(out), job="finetune"):
            raise OSError(28, "No space left on device")  # as Keras raises it: no file name
    assert raised.value.filename == str(out) and raised.value.errno == 28
    with pytest.raises(OSError) as raised:
        with published_folder(str(out), job="finetune") as staging:
            open(os.path.join(staging, "missing", "model.keras"), "rb")
    assert raised.value.filename == os.path.join(str(out), "missing", "model.keras")
    assert not out.exists() and _leftovers(out) == []


def test_a_read_only_parent_names_the_output(tmp_path, monkeypatch):
    def refused(path, *args, **kwargs):  # as a read-only folder refuses (CI runs as root)
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(publish.os, "makedirs", refused)
    with pytest.raises(OSError) as raised:
        _publish(tmp_path / "finetune", {"model.json": "{}"})
    assert raised.value.filename == str(tmp_path / "finetune") and raised.value.errno == 13
