"""Run folders, reuse of an earlier output, and publishing with the manifest last.

An output (a feature cache, a prediction run) is a folder `<root>/<key>/` whose `manifest.json`
is the last file to appear. A run writes into `<root>/.runs/<config key>-<id>/` and, once its
accounting is checked, is published under its key: a folder without a manifest is an interrupted
run and is never read as complete.
"""
import json
import platform
import posixpath
import uuid

import tensorflow as tf

from pipeline.files import write_json_atomic

__all__ = ["MANIFEST", "RUNS_DIR", "new_run_dir", "find_base", "publish", "versions"]

MANIFEST = "manifest.json"
RUNS_DIR = ".runs"


def new_run_dir(root, config_key):
    """A fresh folder for one run, `<root>/.runs/<config key>-<id>/`, never read as an output.

    Folders that earlier runs of the same config key left behind (killed, or failed their
    accounting) are deleted first.
    """
    runs = posixpath.join(root, RUNS_DIR)
    if tf.io.gfile.isdir(runs):
        for name in tf.io.gfile.listdir(runs):
            if name.rstrip("/").startswith(f"{config_key}-"):
                tf.io.gfile.rmtree(posixpath.join(runs, name.rstrip("/")))
    run_dir = posixpath.join(runs, f"{config_key}-{uuid.uuid4().hex[:12]}")
    tf.io.gfile.makedirs(run_dir)
    return run_dir


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

    Its results can be copied for unchanged images. Returns `{"dir", "num_shards", "key"}` or
    None.
    """
    best = None
    for folder, manifest in _manifests(root):
        if (manifest.get("config_key") == config_key and accept(manifest)
                and (best is None or manifest["created"] > best[0])):
            best = (manifest["created"], {"dir": folder, "num_shards": manifest["num_shards"],
                                          "key": posixpath.basename(folder)})
    return best and best[1]


def publish(run_dir, out_dir, manifest):
    """Publishes a checked run as `out_dir`: the manifest is the last thing to appear.

    Locally the run folder (manifest written inside it) is renamed into place at once; on a
    remote file system its files are copied, the manifest last. A partial folder left at
    `out_dir` by an interrupted run is cleared first.

    Returns:
        The manifest.

    Raises:
        ValueError: `out_dir` is complete already.
    """
    if tf.io.gfile.exists(posixpath.join(out_dir, MANIFEST)):
        raise ValueError(f"{out_dir!r} is complete; refusing to overwrite it")
    if tf.io.gfile.isdir(out_dir):
        tf.io.gfile.rmtree(out_dir)
    if "://" in out_dir:
        tf.io.gfile.makedirs(out_dir)
        for name in sorted(tf.io.gfile.listdir(run_dir)):
            _copy_tree(posixpath.join(run_dir, name.rstrip("/")),
                       posixpath.join(out_dir, name.rstrip("/")))
        write_json_atomic(posixpath.join(out_dir, MANIFEST), manifest)
        tf.io.gfile.rmtree(run_dir)
    else:
        write_json_atomic(posixpath.join(run_dir, MANIFEST), manifest)
        tf.io.gfile.rename(run_dir, out_dir)
    return manifest


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
