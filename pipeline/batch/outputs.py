"""Run folders, reuse of an earlier output, and publishing with the manifest last.

An output (a feature cache, a prediction run) is a folder `<root>/<key>/` whose `manifest.json`
is the last file to appear. A run writes into `<root>/.runs/<config key>-<id>/` and, once its
accounting is checked, is published under its key: a folder without a manifest is an interrupted
run and is never read as complete.
"""
import fcntl
import json
import os
import platform
import posixpath
import socket
import time
import uuid

import tensorflow as tf

from pipeline.files import first_damaged, write_json_atomic

__all__ = ["MANIFEST", "RUNS_DIR", "STALE_SECONDS", "new_run_dir", "find_base", "read_whole",
           "publish",
           "release", "versions"]

MANIFEST = "manifest.json"
RUNS_DIR = ".runs"


def new_run_dir(root, config_key):
    """A fresh folder for one run, `<root>/.runs/<config key>-<id>/`, never read as an output.

    The run holds a lock on `<run folder>.lock` beside it while it lives (locally: an `fcntl`
    lock the system drops when the process dies; on `gs://`: the lock file's time, stale after
    `STALE_SECONDS`). Folders of the same config key whose run is provably dead (killed, or
    failed its accounting) are deleted first; a live run's folder is never touched, so two runs
    of one config at once both finish.
    """
    runs = posixpath.join(root, RUNS_DIR)
    if tf.io.gfile.isdir(runs):
        for name in tf.io.gfile.listdir(runs):
            name = name.rstrip("/")
            folder = posixpath.join(runs, name)
            if name.startswith(f"{config_key}-") and not name.endswith(_LOCK) and _dead(folder):
                _remove(folder)
    run_dir = posixpath.join(runs, f"{config_key}-{uuid.uuid4().hex[:12]}")
    tf.io.gfile.makedirs(run_dir)
    _hold(run_dir)
    return run_dir


#: A remote run whose lock file is older than this is taken for dead.
STALE_SECONDS = 24 * 3600
_LOCK = ".lock"
_HELD = {}


def _hold(run_dir):
    path = run_dir + _LOCK
    owner = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()})
    if "://" in run_dir:
        with tf.io.gfile.GFile(path, "w") as handle:
            handle.write(owner)
        return
    handle = open(path, "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    handle.write(owner)
    handle.flush()
    _HELD[run_dir] = handle


def _dead(folder):
    """Whether the run that owns `folder` is gone (its lock free, or stale on `gs://`)."""
    path = folder + _LOCK
    if "://" in folder:
        try:
            with tf.io.gfile.GFile(path) as handle:
                return time.time() - json.load(handle)["time"] > STALE_SECONDS
        except (tf.errors.OpError, ValueError, KeyError):
            return True
    try:
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def _remove(folder):
    """Deletes a dead run's folder and its lock file."""
    if tf.io.gfile.isdir(folder):
        tf.io.gfile.rmtree(folder)
    if tf.io.gfile.exists(folder + _LOCK):
        tf.io.gfile.remove(folder + _LOCK)


def release(run_dir):
    """Deletes a run's folder (if still there) and its lock: the run is over."""
    handle = _HELD.pop(run_dir, None)
    _remove(run_dir)
    if handle is not None:
        handle.close()


def _manifests(root):
    """`(folder, manifest)` of every complete output directly under `root`, by folder name."""
    if not tf.io.gfile.isdir(root):
        return
    for name in sorted(tf.io.gfile.listdir(root)):
        folder = posixpath.join(root, name.rstrip("/"))
        path = posixpath.join(folder, MANIFEST)
        if name.startswith(".") or not tf.io.gfile.exists(path):
            continue
        try:
            with tf.io.gfile.GFile(path) as handle:
                yield folder, json.load(handle)
        except (ValueError, tf.errors.OpError):
            continue


def find_base(root, config_key, *, accept=lambda manifest: True):
    """The newest complete output under `root` with this config key (and that `accept`s).

    Its results can be copied for unchanged images. Newest by the manifest's `created_at` (the
    time to the microsecond; `created`, to the second, for outputs written before it existed).
    Returns `{"dir", "num_shards", "key"}` or None.
    """
    best = None
    for folder, manifest in _manifests(root):
        if manifest.get("config_key") != config_key or not accept(manifest):
            continue
        when = (manifest.get("created_at", 0.0), manifest["created"])
        if best is None or when > best[0]:
            best = (when, {"dir": folder, "num_shards": manifest["num_shards"],
                           "key": posixpath.basename(folder)})
    return best and best[1]


def read_whole(out_dir):
    """The manifest of a whole output at `out_dir`, or None: no manifest, a manifest that is not
    a JSON object listing shards, or a listed shard missing or not its recorded size and sha256
    (a damaged output is never reused: the next run of its inputs replaces it)."""
    try:
        manifest = _read_json(posixpath.join(out_dir, MANIFEST))
    except (ValueError, tf.errors.OpError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), list):
        return None
    return None if first_damaged(out_dir, manifest["shards"]) else manifest


def publish(run_dir, out_dir, manifest):
    """Publishes a checked run as `out_dir`: the manifest is the last thing to appear.

    Locally the run folder (manifest written inside it) is renamed into place at once; on a
    remote file system its files are copied, the manifest last. A partial or damaged folder at
    `out_dir` (`read_whole` says which) is replaced. Where a run of the same inputs published
    `out_dir` first (two runs at once), that output is kept and this run's folder dropped.

    Returns:
        `(manifest, published)`: the manifest of `out_dir`, and whether this run wrote it.
    """
    try:
        whole = read_whole(out_dir)
        if whole is not None:
            return whole, False
        if "://" in out_dir:
            if tf.io.gfile.isdir(out_dir):
                tf.io.gfile.rmtree(out_dir)
            tf.io.gfile.makedirs(out_dir)
            for name in sorted(tf.io.gfile.listdir(run_dir)):
                _copy_tree(posixpath.join(run_dir, name.rstrip("/")),
                           posixpath.join(out_dir, name.rstrip("/")))
            write_json_atomic(posixpath.join(out_dir, MANIFEST), manifest)
            return manifest, True
        write_json_atomic(posixpath.join(run_dir, MANIFEST), manifest)
        if tf.io.gfile.isdir(out_dir):
            tf.io.gfile.rmtree(out_dir)  # partial (a killed copy) or damaged
        try:
            tf.io.gfile.rename(run_dir, out_dir)
        except tf.errors.OpError:
            whole = read_whole(out_dir)
            if whole is None:
                raise
            return whole, False  # published meanwhile
        return manifest, True
    finally:
        release(run_dir)


def _read_json(path):
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def _copy_tree(source, target):
    if tf.io.gfile.isdir(source):
        tf.io.gfile.makedirs(target)
        for name in tf.io.gfile.listdir(source):
            _copy_tree(posixpath.join(source, name.rstrip("/")),
                       posixpath.join(target, name.rstrip("/")))
    else:
        tf.io.gfile.copy(source, target, overwrite=True)


def versions():
    """The versions of what computed an output, for its manifest."""
    import apache_beam as beam
    import keras
    import numpy as np
    import sklearn

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "apache_beam": beam.__version__,
            "numpy": np.__version__, "scikit_learn": sklearn.__version__}
