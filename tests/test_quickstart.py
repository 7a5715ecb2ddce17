"""Tests of the quickstart as a new user runs it: offline, real weights, short quiet output."""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
WEIGHTS = REPO.parent / "shared" / "weights"
V2_050 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5"
#: Lines that only libraries print; a quiet job shows none of them.
NOISE = re.compile(r"I0000|W0000|E0000|oneDNN|cuInit|apache_beam|semi_persistent_directory|"
                   r"retracing")
#: A test-sized sample: real transfer learning in about half a minute.
SMALL = ["--per-class", "30", "--image-size", "96"]


def _quickstart(tmp_path, *args, keras_home):
    """Runs the quickstart in a subprocess with no network; returns (exit code, output lines)."""
    env = {**os.environ, "KERAS_HOME": str(keras_home), "PYTHONPATH": str(REPO),
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    outputs = [f"--{name}-dir={tmp_path / name}" for name in ("sample", "cache", "runs",
                                                              "reports")]
    done = subprocess.run([sys.executable, "-m", "jobs.quickstart", *outputs, *args], env=env,
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)
    return done.returncode, done.stdout.splitlines()


def _check_real_transfer(tmp_path, code, lines):
    assert code == 0, "\n".join(lines)
    assert not [line for line in lines if NOISE.search(line)]
    assert len(lines) <= 40
    assert lines[-1].endswith("index.html") and os.path.isfile(lines[-1])
    (manifest,) = tmp_path.glob("cache/*/manifest.json")
    used = json.loads(manifest.read_text())["weights_used"]
    head = json.loads((tmp_path / "runs" / "head" / "report.json").read_text())["accuracy"]
    tuned = json.loads((tmp_path / "runs" / "finetune" / "report.json").read_text())["accuracy"]
    assert os.path.basename(used) == V2_050
    assert head >= 0.85 and tuned >= head
    return used


@pytest.fixture(scope="module")
def weights_dir():
    """The shared folder of real Keras weight files; skips when absent."""
    if not (WEIGHTS / V2_050).is_file():
        pytest.skip(f"{WEIGHTS} is not here")
    return WEIGHTS


def test_quickstart_learns_offline_from_a_weights_dir(tmp_path, weights_dir):
    empty = tmp_path / "keras"
    code, lines = _quickstart(tmp_path, "--weights-dir", str(weights_dir), *SMALL,
                              keras_home=empty)
    assert _check_real_transfer(tmp_path, code, lines) == str(weights_dir / V2_050)


def test_quickstart_learns_offline_from_the_keras_cache(tmp_path, weights_dir):
    keras_home = tmp_path / "keras"
    (keras_home / "models").mkdir(parents=True)
    for file in weights_dir.glob("*.h5"):
        (keras_home / "models" / file.name).symlink_to(file)
    code, lines = _quickstart(tmp_path, *SMALL, keras_home=keras_home)
    assert _check_real_transfer(tmp_path, code, lines) == str(keras_home / "models" / V2_050)


def test_quickstart_without_weights_refuses_in_one_line_and_writes_nothing(tmp_path):
    empty = tmp_path / "keras"
    code, lines = _quickstart(tmp_path, *SMALL, keras_home=empty)
    assert code != 0
    assert len(lines) == 1, "\n".join(lines)
    assert re.match(rf"error: no ImageNet weights for mobilenet_v2 .*looked for .*{V2_050} in "
                    rf"Keras's cache {empty / 'models'}.*--weights-dir DIR.*--weights none",
                    lines[0])
    assert not [name for name in ("sample", "cache", "runs", "reports")
                if (tmp_path / name).exists()]


def test_python_m_jobs_lists_every_job_in_one_line_each():
    done = subprocess.run([sys.executable, "-m", "jobs"], cwd=REPO, capture_output=True,
                          text=True, check=True)
    listed = [line.split()[2] for line in done.stdout.splitlines() if line.startswith("python")]
    modules = sorted(p.stem for p in (REPO / "jobs").glob("*.py")
                     if not p.stem.startswith("_") and p.stem != "cli")
    assert sorted(name.removeprefix("jobs.") for name in listed) == modules
    assert done.stderr == ""
