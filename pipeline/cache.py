"""Finding, finishing and reading a feature cache.

A cache is a folder `<cache root>/<cache key>/` holding TFRecord shards of `pipeline.records`
examples (`embeddings-SSSSS-of-NNNNN.tfrecord`), `skipped.jsonl` and `manifest.json`. The manifest
is written last, atomically, and lists every shard with its sha256: a folder without it is an
interrupted run and is never read as complete.
"""
import collections
import hashlib
import json
import posixpath
import uuid

import numpy as np
import tensorflow as tf

from pipeline.records import from_example

__all__ = ["MANIFEST", "SHARD_PREFIX", "CacheError", "FeatureSplit", "read_manifest",
           "reset_partial", "finalize", "load_split", "as_dataset", "write_json_atomic"]

MANIFEST = "manifest.json"
SHARD_PREFIX = "embeddings"
SKIPPED = "skipped.jsonl"
NO_FACE = "no_face.jsonl"


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


def reset_partial(cache_dir):
    """Deletes what an interrupted run left in `cache_dir` (which must have no manifest)."""
    if tf.io.gfile.exists(posixpath.join(cache_dir, MANIFEST)):
        raise CacheError(f"cache {cache_dir!r} is complete; refusing to reset it")
    if tf.io.gfile.isdir(cache_dir):
        tf.io.gfile.rmtree(cache_dir)
    tf.io.gfile.makedirs(cache_dir)


def _shards(cache_dir):
    return sorted(tf.io.gfile.glob(posixpath.join(cache_dir, f"{SHARD_PREFIX}-*.tfrecord")))


def _sha256(path):
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_records(paths):
    for serialized in tf.data.TFRecordDataset(paths).as_numpy_iterator():
        yield from_example(serialized)


def finalize(cache_dir, *, cache_key, config, class_names, source, extra=None):
    """Counts and checksums what a finished pipeline wrote, then writes the manifest last.

    Args:
        cache_dir: the cache folder.
        cache_key: its key.
        config: the job's config as a dict.
        class_names: the source's class names.
        source: a dict describing the source (type, root or name, fingerprint).
        extra: more manifest entries (versions, timings, weights used, ...). Defaults to None.

    Returns:
        The manifest dict.
    """
    shards = _shards(cache_dir)
    counts = collections.Counter()
    embedding_dim = None
    for record in _read_records(shards):
        counts[(record.split, record.label_name, record.copy)] += 1
        embedding_dim = len(record.embedding)
    skipped = _read_jsonl(cache_dir, SKIPPED)
    no_face = _read_jsonl(cache_dir, NO_FACE)
    manifest = {
        "format_version": config.get("format_version", 1),
        "cache_key": cache_key,
        "config": config,
        "source": source,
        "class_names": list(class_names),
        "embedding_dim": embedding_dim,
        "counts": _nest_counts(counts),
        "skipped": skipped,
        "num_skipped": len(skipped),
        "no_face": no_face,
        "num_no_face": len(no_face),
        "shards": [{"file": posixpath.basename(p), "sha256": _sha256(p),
                    "bytes": tf.io.gfile.stat(p).length} for p in shards],
        **(extra or {}),
    }
    write_json_atomic(posixpath.join(cache_dir, MANIFEST), manifest)
    return manifest


def _read_jsonl(cache_dir, name):
    path = posixpath.join(cache_dir, name)
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as handle:
        return sorted((json.loads(line) for line in handle if line.strip()),
                      key=lambda item: item["id"])


def _nest_counts(counts):
    splits = {}
    for (split, label_name, copy), n in sorted(counts.items()):
        entry = splits.setdefault(split, {"records": 0, "images": 0, "per_class": {},
                                          "per_copy": {}})
        entry["records"] += n
        entry["images"] += n if copy == 0 else 0
        entry["per_class"][label_name] = entry["per_class"].get(label_name, 0) + (
            n if copy == 0 else 0)
        entry["per_copy"][str(copy)] = entry["per_copy"].get(str(copy), 0) + n
    return splits


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
