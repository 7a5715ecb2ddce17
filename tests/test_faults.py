"""Failures under faults are one line, with exit status 1, and leave nothing half-done."""
import errno
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from jobs import embed
from pipeline import errors
from tests.conftest import IN_MEMORY, REPO, TINY

#: Root without its override of file permissions (CI runs as root).
NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]


def _job(*argv, prefix=()):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([*prefix, sys.executable, "-m", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True)
    return done.returncode, done.stdout.splitlines() + done.stderr.splitlines()


def _files(root):
    return sorted(os.path.relpath(os.path.join(top, name), root)
                  for top, _, names in os.walk(root) for name in names)


def test_the_failures_a_person_can_act_on_are_one_line():
    assert errors.one_line(ValueError("data 'x': no images\nmore")) == "data 'x': no images"
    assert errors.one_line(PermissionError(errno.EACCES, "Permission denied", "/c/x")) == (
        "/c/x: permission denied")
    assert errors.one_line(OSError(errno.ENOSPC, "No space left on device", "/c/a.tmp")) == (
        "/c/a.tmp: no space left on the device")
    full = tf.errors.ResourceExhaustedError(None, None, "/c/a.tmp; No space left on device")
    assert errors.one_line(full) == "/c/a.tmp: no space left on the device"
    denied = tf.errors.PermissionDeniedError(None, None, "/c/.runs; Permission denied")
    assert errors.one_line(denied) == "/c/.runs: permission denied"
    worker = RuntimeError("Pipeline failed: Traceback ...\nOSError: [Errno 28] No space left "
                          "on device: '/c/x.tmp' [while running 'EmbedImages/EmbedShard']")
    assert errors.one_line(worker) == ("/c/x.tmp: no space left on the device (in step "
                                       "EmbedImages/EmbedShard)")
    assert errors.one_line(KeyError("a bug")) is None


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv is not here")
def test_an_unwritable_cache_root_is_one_line_and_writes_nothing(faces, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    code, lines = _job("jobs.embed", "--data", faces, *TINY, "--cache-dir",
                       str(locked / "cache"), prefix=NO_OVERRIDE)
    assert code == 1 and lines == [f"error: {locked / 'cache'}: permission denied"]
    assert os.listdir(locked) == []


def test_a_full_disk_while_writing_a_shard_is_one_line_and_leaves_no_partial_file(
        faces, tmp_path, monkeypatch, capsys):
    real = tf.io.TFRecordWriter

    class FillsUp:
        """A TFRecord writer on a disk that is full after two records."""

        def __init__(self, path):
            self.path, self._writer, self._count = path, real(path), 0

        def write(self, record):
            self._count += 1
            if self._count > 2:
                raise tf.errors.ResourceExhaustedError(
                    None, None, f"{self.path}; No space left on device")
            self._writer.write(record)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self._writer.close()

    monkeypatch.setattr(tf.io, "TFRecordWriter", FillsUp)
    cache = tmp_path / "cache"
    with pytest.raises(SystemExit) as exited:
        embed.main(["--data", faces, *TINY, "--augment-copies", "0", "--cache-dir", str(cache),
                    *IN_MEMORY])
    line = exited.value.code
    assert line.startswith(f"error: {cache}/.runs/") and "no space left on the device" in line
    shown = capsys.readouterr()
    assert "\n" not in line and "done" not in shown.out + shown.err
    assert "Traceback" not in shown.out + shown.err
    assert [name for name in _files(cache) if ".tmp" in name] == []
    assert not [name for name in os.listdir(cache) if not name.startswith(".")]


def test_a_damaged_previous_cache_is_named_in_one_warning_and_not_reused(faces_copy, tmp_path,
                                                                          capsys):
    argv = ["--data", str(faces_copy), *TINY, "--augment-copies", "1", "--no-face-crop",
            "--cache-dir", str(tmp_path / "cache"), *IN_MEMORY]
    first = embed.run(argv)
    (shard,) = [p for p in os.listdir(first.cache_dir) if p.endswith(".tfrecord")]
    damaged = bytearray((pathlib.Path(first.cache_dir) / shard).read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    (pathlib.Path(first.cache_dir) / shard).write_bytes(bytes(damaged))
    shutil.copy(faces_copy / "smiling" / "smiling_0000.jpg", faces_copy / "smiling" / "new.jpg")
    embed.main(argv)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"warning: the previous cache {first.cache_dir} is damaged ({shard}: its "
                        "content does not match the sha256 in its index); its images were "
                        "embedded again")
    assert "25 images embedded, 0 reused" in lines[1]
    fresh = embed.run([*argv[:-len(IN_MEMORY) - 2], "--cache-dir", str(tmp_path / "fresh"),
                       *IN_MEMORY])
    (again,) = [line for line in lines if line.startswith(str(tmp_path / "cache"))]
    assert _shards(again) == _shards(fresh.cache_dir)


@pytest.mark.parametrize("damage", ["delete", "flip"])
def test_a_damaged_cache_is_replaced_by_the_rerun_never_reused(faces, tmp_path, capsys, damage):
    argv = ["--data", str(faces), *TINY, "--augment-copies", "0", "--no-face-crop",
            "--num-shards", "2", "--cache-dir", str(tmp_path / "cache"), *IN_MEMORY]
    first = embed.run(argv)
    expected = _shards(first.cache_dir)
    shard = pathlib.Path(first.cache_dir) / sorted(expected)[0]
    if damage == "delete":
        shard.unlink()
    else:
        shard.write_bytes(shard.read_bytes()[:-1] + bytes([shard.read_bytes()[-1] ^ 1]))
    embed.main(argv)
    out = capsys.readouterr().out
    assert "reused cache" not in out and "damaged or incomplete; replaced" in out
    assert _shards(first.cache_dir) == expected  # whole again, the same records
    again = embed.run(argv)
    assert again.reused and again.embedded == 0


def _shards(cache_dir):
    return {name: (pathlib.Path(cache_dir) / name).read_bytes()
            for name in os.listdir(cache_dir) if name.endswith(".tfrecord")}


def _png_header_claiming(width, height):
    """A PNG whose header says `width` x `height` (a decompression bomb's first bytes)."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def test_too_large_images_are_refused_at_the_projects_limit_whoever_notices():
    from pipeline.data.images import ImageError, decode_image

    with pytest.raises(ImageError, match=r"^image too large: 400,000,000 pixels \(the limit is "
                                         r"100 megapixels\)$"):
        decode_image(_png_header_claiming(20_000, 20_000))  # Pillow's own limit is hit first
    with pytest.raises(ImageError, match=r"^image too large: 12000x10000 pixels \(the limit is "
                                         r"100 megapixels\)$"):
        decode_image(_png_header_claiming(12_000, 10_000))


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv is not here")
def test_a_file_without_read_permission_is_skipped_as_permission_denied(faces_copy, tmp_path):
    private = faces_copy / "smiling" / "smiling_0000.jpg"
    private.chmod(0)
    code, lines = _job("jobs.embed", "--data", str(faces_copy), *TINY, "--augment-copies", "0",
                       "--no-face-crop", "--cache-dir", str(tmp_path / "cache"),
                       prefix=NO_OVERRIDE)
    assert code == 0, lines
    assert f"    {private}: permission denied" in lines


def test_twenty_evaluations_recorded_eight_at_a_time_keep_every_row(tmp_path):
    import concurrent.futures
    import csv

    import numpy as np

    from pipeline.evaluation.record import _record_run
    from pipeline.reports import write_report

    y = np.array([0, 1] * 10)
    proba = np.stack([np.where(y == 1, 0.3, 0.7), np.where(y == 1, 0.7, 0.3)], axis=1)
    report = write_report(tmp_path / "report", ids=np.array([f"{i}.jpg" for i in range(20)]),
                          y_true=y, proba=proba, class_names=["cat", "dog"], title="soak")

    def record(i):
        row = {**report, "time": f"2026-12-01T06:{i:02d}:00+0000", "model": f"/m/{i}",
               "data": "/data", "data_fingerprint": "fp", "run_dir": f"run-{i:02d}"}
        return _record_run(str(tmp_path), row, threshold=0.01, fail_under=None)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(record, range(20)))
    with open(tmp_path / "runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["run_dir"] for row in rows) == [f"run-{i:02d}" for i in range(20)]
    page = (tmp_path / "index.html").read_text()
    assert all(f"run-{i:02d}" in page for i in range(20))
    assert not [name for name in os.listdir(tmp_path) if ".tmp" in name]


def test_a_dask_worker_that_keeps_dying_is_one_line():
    scheduler = pytest.importorskip("distributed.scheduler")

    class Worker:
        address = "tcp://127.0.0.1:40000"

    err = scheduler.KilledWorker("('EmbedImages/ShardedPass/EmbedShard-0', 3)", Worker(), 3)
    line = errors.one_line(err)
    assert line.startswith("a Dask worker died running every attempt of a task (")
    assert "\n" not in line and line.endswith("; see the workers' logs")


_INTERRUPTED_PREDICT = """
import os, signal, sys, time
# Ctrl-C as in a terminal, even where the suite runs in the background (which ignores SIGINT)
signal.signal(signal.SIGINT, signal.default_int_handler)
from pipeline.prediction import job

def stopped_by_the_user(*args, **kwargs):  # the pass, then a person presses Ctrl-C
    open(sys.argv[1], "w").close()
    time.sleep(120)

job.run_pipeline = stopped_by_the_user
from jobs import predict
predict.main(sys.argv[2:])
"""


def test_ctrl_c_during_a_pass_is_one_line_and_publishes_nothing(tiny_head, faces, tmp_path):
    import signal
    import time

    ready, out = tmp_path / "ready", tmp_path / "predictions"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    running = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED_PREDICT, str(ready), "--model", tiny_head, "--data",
         faces, "--out", str(out), *IN_MEMORY], cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600  # as long as it takes to start, on a loaded machine too
    while not ready.exists() and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ready.exists()  # in the pass, not in TensorFlow's import
    running.send_signal(signal.SIGINT)
    stdout, stderr = running.communicate(timeout=60)
    assert running.returncode == 130, stderr
    assert stderr.splitlines()[-1] == ("error: interrupted: jobs.predict stopped; nothing new "
                                       "was published")
    assert "Traceback" not in stdout + stderr
    assert [name for name in os.listdir(out) if not name.startswith(".")] == []
