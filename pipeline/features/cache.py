"""Reading a feature cache.

A cache is a folder `<cache root>/<cache key>/` holding TFRecord shards of
`pipeline.features.records` examples (`embeddings-SSSSS-of-NNNNN.tfrecord`), their indexes
(`index-SSSSS-of-NNNNN.json`, see `pipeline.batch.layout`) and `manifest.json`. The embed job
writes it into `<cache root>/.runs/<config key>-<id>/` and publishes it under its cache key with
the manifest last (`pipeline.batch.outputs`): a folder without a manifest is an interrupted run
and is never read as complete.
"""
import collections
import json
import posixpath

import numpy as np
import tensorflow as tf

from pipeline.batch.outputs import MANIFEST, RUNS_DIR
from pipeline.data.images import IMAGE_EXTENSIONS
from pipeline.features.records import read_columns
from pipeline.files import first_damaged

__all__ = ["MANIFEST", "RUNS_DIR", "CacheError", "FeatureSplit", "read_manifest", "load_split",
           "load_splits", "as_dataset"]


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


#: What every cache's manifest holds; a manifest without them was not written by `jobs.embed`.
_MANIFEST_KEYS = ("cache_key", "class_names", "config", "counts", "embedding_dim", "shards")


def read_manifest(cache_dir):
    """Reads a complete cache's manifest.

    Raises:
        CacheError: no such folder, a folder that is not a cache (an image folder, a cache
            root), no manifest (an interrupted or running job), or a manifest that is not JSON
            or lacks a cache's keys.
    """
    if not tf.io.gfile.isdir(cache_dir):
        raise CacheError(f"cache {cache_dir!r}: no such folder; run `python -m jobs.embed` first")
    path = posixpath.join(cache_dir, MANIFEST)
    if not tf.io.gfile.exists(path):
        raise CacheError(_not_a_cache(cache_dir))
    with tf.io.gfile.GFile(path) as handle:
        try:
            manifest = json.load(handle)
        except json.JSONDecodeError as err:
            raise CacheError(f"cache {cache_dir!r}: {MANIFEST} is not valid JSON ({err})") from err
    missing = [key for key in _MANIFEST_KEYS if key not in manifest]
    if not isinstance(manifest, dict) or missing:
        raise CacheError(f"cache {cache_dir!r}: {MANIFEST} lacks {', '.join(missing) or 'keys'} "
                         "(not written by jobs.embed, or by another version); embed again")
    return manifest


def _not_a_cache(folder):
    """Why a folder without a manifest is not a cache, in one line."""
    names = [name.rstrip("/") for name in tf.io.gfile.listdir(folder)]
    caches = sorted(name for name in names
                    if tf.io.gfile.exists(posixpath.join(folder, name, MANIFEST)))
    if caches:
        shown = ", ".join(caches[:5]) + (f" and {len(caches) - 5} more" if len(caches) > 5 else "")
        return (f"cache {folder!r} is a cache root holding {len(caches)} cache(s), not a cache: "
                f"pass one of its folders ({shown}), e.g. the one `python -m jobs.embed` "
                "printed last")
    if any(name.startswith(("embeddings-", "index-", "_listed", "_progress")) for name in names):
        return (f"cache {folder!r} is incomplete (no {MANIFEST}): its embed job was interrupted "
                "or is still running; run `python -m jobs.embed` again")
    if any(name.lower().endswith(IMAGE_EXTENSIONS) or tf.io.gfile.isdir(
            posixpath.join(folder, name)) for name in names):
        return (f"cache {folder!r} holds images, not embeddings: run `python -m jobs.embed "
                f"--data {folder}` first and pass the cache folder it prints")
    return f"cache {folder!r} holds no cache (no {MANIFEST}); run `python -m jobs.embed` first"


def _verify(cache_dir, manifest):
    found = first_damaged(cache_dir, manifest["shards"])
    if found is None:
        return
    path, how = found
    name = posixpath.basename(path)
    if how == "missing":
        raise CacheError(f"cache {cache_dir!r}: shard {name} is missing")
    raise CacheError(f"cache {cache_dir!r}: shard {name} is corrupt (checksum mismatch); "
                     "delete the cache folder and embed again")


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
    return load_splits(cache_dir, {split: clean_only}, verify=verify)[split]


def load_splits(cache_dir, wanted, *, verify=True):
    """Several splits of a complete cache in one read of its shards (`load_split` for each).

    Args:
        cache_dir: the cache folder.
        wanted: `{split: clean_only}`, e.g. `{"train": False, "val": True}`.
        verify: as for `load_split`. Defaults to `True`.

    Returns:
        `{split: FeatureSplit}`.
    """
    manifest = read_manifest(cache_dir)
    if verify:
        _verify(cache_dir, manifest)
    paths = [posixpath.join(cache_dir, shard["file"]) for shard in manifest["shards"]]
    columns = read_columns(paths, manifest["embedding_dim"] or 0)
    splits = {}
    for split, clean_only in wanted.items():
        rows = np.flatnonzero((columns["split"] == split)
                              & ((columns["copy"] == 0) | (not clean_only)))
        rows = rows[np.lexsort((columns["copy"][rows], columns["id"][rows]))]  # by (id, copy)
        splits[split] = FeatureSplit(
            ids=columns["id"][rows], embeddings=columns["embedding"][rows],
            labels=columns["label"][rows], copies=columns["copy"][rows],
            digests=columns["digest"][rows])
    return splits


def as_dataset(cache_dir, split, *, clean_only=False, verify=True):
    """`load_split` as a `tf.data.Dataset` of dicts: id, embedding, label, copy, digest."""
    data = load_split(cache_dir, split, clean_only=clean_only, verify=verify)
    return tf.data.Dataset.from_tensor_slices({
        "id": data.ids, "embedding": data.embeddings, "label": data.labels, "copy": data.copies,
        "digest": data.digests})
