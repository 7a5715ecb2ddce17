"""Finding, finishing and reading a feature cache.

A cache is a folder `<cache root>/<cache key>/` holding TFRecord shards of
`pipeline.features.records` examples (`embeddings-SSSSS-of-NNNNN.tfrecord`), their indexes
(`index-SSSSS-of-NNNNN.json`, see `pipeline.features.shards`) and `manifest.json`. A run writes
into `<cache root>/.runs/<config key>-<id>/` and, once its accounting is checked, is published
under its cache key with the manifest last: a folder without a manifest is an interrupted run and
is never read as complete.
"""
import collections
import hashlib
import json
import posixpath
import uuid

import numpy as np
import tensorflow as tf

from pipeline.features.records import from_example

__all__ = ["MANIFEST", "CacheError", "FeatureSplit", "read_manifest", "new_run_dir",
           "find_base", "publish", "load_split", "as_dataset", "write_json_atomic"]

MANIFEST = "manifest.json"


class CacheError(ValueError):
    """A cache that is missing, incomplete, corrupt or not the one asked for (one-line message)."""


FeatureSplit = collections.namedtuple("FeatureSplit",
                                      ["ids", "embeddings", "labels", "copies", "digests"])
FeatureSplit.__doc__ = """One split of a cache as numpy arrays, sorted by (id, copy).

Attributes:
    ids: str array (n,).
    embeddings: float32 array (n, embedding_dim).
    labels: int64 array (n,).
    copies: int64 array (n,); 0 is the clean image.
    digests: str array (n,); sha256 of each image's encoded content.
"""


def write_json_atomic(path, value):
    """Writes JSON to `path` through a temporary file and a rename, so readers never see half."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(tmp, "w") as handle:
        handle.write(json.dumps(value, indent=2, sort_keys=True))
    tf.io.gfile.rename(tmp, path, overwrite=True)


def read_manifest(cache_dir):
    """Reads a complete cache's manifest.

    Raises:
        CacheError: no such folder, or no manifest (an interrupted or running job).
    """
    if not tf.io.gfile.isdir(cache_dir):
        raise CacheError(f"cache {cache_dir!r}: no such folder; run `python -m jobs.embed` first")
    path = posixpath.join(cache_dir, MANIFEST)
    if not tf.io.gfile.exists(path):
        raise CacheError(f"cache {cache_dir!r} is incomplete (no {MANIFEST}): its embed job was "
                         "interrupted or is still running; run `python -m jobs.embed` again")
    with tf.io.gfile.GFile(path) as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as err:
            raise CacheError(f"cache {cache_dir!r}: {MANIFEST} is not valid JSON ({err})") from err


RUNS_DIR = ".runs"


def _is_remote(path):
    return "://" in path


def new_run_dir(cache_root, config_key):
    """A fresh folder for one run, `<root>/.runs/<config key>-<id>/`, never read as a cache.

    Folders that earlier runs of the same config key left behind (killed, or failed their
    accounting) are deleted first.
    """
    runs = posixpath.join(cache_root, RUNS_DIR)
    if tf.io.gfile.isdir(runs):
        for name in tf.io.gfile.listdir(runs):
            if name.rstrip("/").startswith(f"{config_key}-"):
                tf.io.gfile.rmtree(posixpath.join(runs, name.rstrip("/")))
    run_dir = posixpath.join(runs, f"{config_key}-{uuid.uuid4().hex[:12]}")
    tf.io.gfile.makedirs(run_dir)
    return run_dir


def find_base(cache_root, config_key, class_names):
    """The newest complete cache under `cache_root` with this config key and these classes.

    Its records can be copied for unchanged images. Returns `{"dir", "num_shards", "cache_key"}`
    or None.
    """
    if not tf.io.gfile.isdir(cache_root):
        return None
    best = None
    for name in sorted(tf.io.gfile.listdir(cache_root)):
        cache_dir = posixpath.join(cache_root, name.rstrip("/"))
        if name.startswith(".") or not tf.io.gfile.exists(posixpath.join(cache_dir, MANIFEST)):
            continue
        try:
            manifest = read_manifest(cache_dir)
        except CacheError:
            continue
        if (manifest.get("config_key") == config_key
                and manifest.get("class_names") == list(class_names)
                and (best is None or manifest["created"] > best[0])):
            best = (manifest["created"], {"dir": cache_dir, "num_shards": manifest["num_shards"],
                                          "cache_key": manifest["cache_key"]})
    return best and best[1]


def publish(run_dir, cache_dir, manifest):
    """Publishes a checked run as the cache `cache_dir`: the manifest is the last thing to appear.

    Locally the run folder (manifest written inside it) is renamed into place at once; on a
    remote file system its files are copied, the manifest last. A partial folder left at
    `cache_dir` by an interrupted run is cleared first.

    Returns:
        The manifest.
    """
    if tf.io.gfile.exists(posixpath.join(cache_dir, MANIFEST)):
        raise CacheError(f"cache {cache_dir!r} is complete; refusing to overwrite it")
    if tf.io.gfile.isdir(cache_dir):
        tf.io.gfile.rmtree(cache_dir)
    if _is_remote(cache_dir):
        tf.io.gfile.makedirs(cache_dir)
        for name in sorted(tf.io.gfile.listdir(run_dir)):
            tf.io.gfile.copy(posixpath.join(run_dir, name), posixpath.join(cache_dir, name),
                             overwrite=True)
        write_json_atomic(posixpath.join(cache_dir, MANIFEST), manifest)
        tf.io.gfile.rmtree(run_dir)
    else:
        write_json_atomic(posixpath.join(run_dir, MANIFEST), manifest)
        tf.io.gfile.rename(run_dir, cache_dir)
    return manifest


def _sha256(path):
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_records(paths):
    for serialized in tf.data.TFRecordDataset(paths).as_numpy_iterator():
        yield from_example(serialized)


def _verify(cache_dir, manifest):
    for shard in manifest["shards"]:
        path = posixpath.join(cache_dir, shard["file"])
        if not tf.io.gfile.exists(path):
            raise CacheError(f"cache {cache_dir!r}: shard {shard['file']} is missing")
        if _sha256(path) != shard["sha256"]:
            raise CacheError(f"cache {cache_dir!r}: shard {shard['file']} is corrupt "
                             "(checksum mismatch); delete the cache folder and embed again")


def load_split(cache_dir, split, *, clean_only=False, verify=True):
    """Loads one split of a complete cache as numpy arrays, sorted by (id, copy).

    Args:
        cache_dir: the cache folder (`cache/<key>`).
        split: `"train"`, `"val"` or `"test"`.
        clean_only: keep only copy 0 (the un-augmented image). Defaults to `False`.
        verify: check the manifest and every shard's sha256 first. Defaults to `True`.

    Returns:
        A `FeatureSplit`.

    Raises:
        CacheError: the cache is incomplete or corrupt.

    Example:
        >>> train = load_split("cache/0123abcd4567ef89", "train")
        >>> train.embeddings.shape
        (7584, 1280)
    """
    manifest = read_manifest(cache_dir)
    if verify:
        _verify(cache_dir, manifest)
    paths = [posixpath.join(cache_dir, shard["file"]) for shard in manifest["shards"]]
    rows = sorted(((r.id, r.copy, r.label, r.embedding, r.digest) for r in _read_records(paths)
                   if r.split == split and (r.copy == 0 or not clean_only)),
                  key=lambda row: row[:2])
    dim = manifest["embedding_dim"] or 0
    return FeatureSplit(
        ids=np.array([row[0] for row in rows], dtype=str),
        embeddings=np.array([row[3] for row in rows], np.float32).reshape(len(rows), dim),
        labels=np.array([row[2] for row in rows], np.int64),
        copies=np.array([row[1] for row in rows], np.int64),
        digests=np.array([row[4] for row in rows], dtype=str))


def as_dataset(cache_dir, split, *, clean_only=False, verify=True):
    """`load_split` as a `tf.data.Dataset` of dicts: id, embedding, label, copy, digest."""
    data = load_split(cache_dir, split, clean_only=clean_only, verify=verify)
    return tf.data.Dataset.from_tensor_slices({
        "id": data.ids, "embedding": data.embeddings, "label": data.labels, "copy": data.copies,
        "digest": data.digests})
