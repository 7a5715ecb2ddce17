"""Accounting for an embed run: every listed image has its records or a reason, or nothing is
published.

The embed pipeline leaves files, not metrics (no runner is trusted to report them): the number of
images listed (`_listed.json`) and one index per shard. `account()` reads them in the driver and
checks, before any manifest exists, that the shards together received every listed image, that
each image has its clean record plus K copies for training images (or an entry in `skipped`),
and that every shard file is there at the size its index says. A shortfall raises
`IncompleteRunError` with one line naming how many are missing and from which step.
"""
import collections
import dataclasses
import json
import posixpath

import tensorflow as tf

from pipeline.data.fingerprint import combine_hashes
from pipeline.features import shards
from pipeline.features.records import records_per_image

__all__ = ["IncompleteRunError", "RunAccount", "account"]

LISTED_FILE = "_listed.json"


class IncompleteRunError(ValueError):
    """A run whose outputs do not account for every listed image (one-line message)."""


@dataclasses.dataclass(frozen=True)
class RunAccount:
    """What a complete run wrote, summed over its shards.

    Attributes:
        listed: images listed by the source.
        num_shards: the shard count.
        counts: per split: `records`, `images`, `per_class`, `per_copy` (the manifest's `counts`).
        skipped: `{id, path, reason}` of files that could not be used, sorted by id.
        no_face: `{id, path}` of images where face crop found no face, sorted by id.
        shards: `{file, sha256, bytes, records}` per shard file, in shard order.
        fingerprint: the data fingerprint (ids, classes and content digests of every listed file).
        embedded: images that went through the backbone in this run.
        reused: images whose records were copied from a previous cache.
        embedding_dim: the embedding size.
    """

    listed: int
    num_shards: int
    counts: dict
    skipped: list
    no_face: list
    shards: list
    fingerprint: str
    embedded: int
    reused: int
    embedding_dim: int


def _read_listed(run_dir):
    path = posixpath.join(run_dir, LISTED_FILE)
    if not tf.io.gfile.exists(path):
        raise IncompleteRunError("embed run incomplete: step CountListed wrote no count "
                                 "(the pipeline did not run to its end); nothing was published")
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def _check_index(index, augment_copies, run_dir):
    name = index["file"]
    accounted = len(index["entries"]) + len(index["skipped"])
    if accounted != index["listed"]:
        raise IncompleteRunError(f"embed run incomplete: {index['listed'] - accounted} of "
                                 f"{index['listed']} images sent to {name} are neither embedded "
                                 "nor skipped (step EmbedShard); nothing was published")
    expected = sum(records_per_image(entry["split"], augment_copies)
                   for entry in index["entries"])
    if index["records"] != expected:
        raise IncompleteRunError(f"embed run incomplete: {expected - index['records']} of "
                                 f"{expected} records missing from {name} (step EmbedShard); "
                                 "nothing was published")
    path = posixpath.join(run_dir, name)
    if not tf.io.gfile.exists(path) or tf.io.gfile.stat(path).length != index["bytes"]:
        raise IncompleteRunError(f"embed run incomplete: {name} is missing or not the size its "
                                 "index says (step EmbedShard); nothing was published")


def _nest_counts(indexes):
    counts = collections.Counter()
    for index in indexes:
        for key, n in index["counts"].items():
            counts[tuple(json.loads(key))] += n
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


def account(run_dir, *, augment_copies, class_names):
    """Checks that a run's shards account for every listed image, and sums them up.

    Args:
        run_dir: the run's folder.
        augment_copies: K, the copies each training image must have.
        class_names: class names that must each keep at least one image (a folder's class
            folders), or None to check none.

    Returns:
        A `RunAccount`.

    Raises:
        IncompleteRunError: a missing count or index, missing images or records, a missing or
            truncated shard file, or a class left with no readable image.
    """
    listed = _read_listed(run_dir)
    total, num_shards = listed["listed"], listed["num_shards"]
    indexes, missing = [], []
    for shard in range(num_shards):
        index = shards.read_index(posixpath.join(run_dir, shards.index_name(shard, num_shards)))
        (missing if index is None else indexes).append(shard if index is None else index)
    accounted = sum(index["listed"] for index in indexes)
    if accounted != total:
        raise IncompleteRunError(
            f"embed run incomplete: {total - accounted} of {total} listed images are missing "
            f"after step EmbedShard (no index from {len(missing)} of {num_shards} shards); "
            "nothing was published")
    for index in indexes:
        _check_index(index, augment_copies, run_dir)
    if class_names:
        _check_classes(indexes, class_names)
    return RunAccount(
        listed=total, num_shards=num_shards, counts=_nest_counts(indexes),
        skipped=_sorted(item for index in indexes for item in index["skipped"]),
        no_face=_sorted(item for index in indexes for item in index["no_face"]),
        shards=[{key: index[key] for key in ("file", "sha256", "bytes", "records")}
                for index in indexes],
        fingerprint=combine_hashes(int(index["fingerprint"], 16) for index in indexes),
        embedded=sum(index["embedded"] for index in indexes),
        reused=sum(index["reused"] for index in indexes),
        embedding_dim=max((index["embedding_dim"] for index in indexes), default=0))


def _check_classes(indexes, class_names):
    found = {entry["label_name"] for index in indexes for entry in index["entries"]}
    empty = [name for name in class_names if name not in found]
    if empty:
        raise ValueError(f"data: class folder {empty[0]!r} holds no readable image "
                         f"({len(empty)} such class(es)); nothing was published")


def _sorted(items):
    keep = ("id", "path", "reason")
    return sorted(({k: item[k] for k in keep if k in item} for item in items),
                  key=lambda item: item["id"])
