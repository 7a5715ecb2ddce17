"""Accounting for a pass: every listed image has its results or a reason, or nothing is published.

A pass leaves files, not metrics (no runner is trusted to report them): the number of images
listed (`_listed.json`, written by `AssignShards`) and one index per shard. `read_indexes()`
reads them in the driver and checks, before any manifest exists, that the shards together
received every listed image, that each shard holds every image sent to it or a reason it was
skipped, the results each image should have (`expected_records`), and its file at the size its
index says. A shortfall raises `IncompleteRunError`, one line naming how many are missing and
from which step.
"""
import json
import posixpath

import tensorflow as tf

from pipeline.batch import layout

__all__ = ["LISTED_FILE", "IncompleteRunError", "read_listed", "read_indexes", "sorted_items"]

LISTED_FILE = "_listed.json"


class IncompleteRunError(ValueError):
    """A run whose outputs do not account for every listed image (one-line message)."""


def read_listed(run_dir, *, job):
    """`{"listed": n, "num_shards": n}` that `AssignShards` wrote for the driver."""
    path = posixpath.join(run_dir, LISTED_FILE)
    if not tf.io.gfile.exists(path):
        raise IncompleteRunError(f"{job} run incomplete: step AssignShards wrote no count "
                                 "(the pipeline did not run to its end); nothing was published")
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def _check_index(index, run_dir, *, job, step, expected_records):
    name = index["file"]
    accounted = len(index["entries"]) + len(index["skipped"])
    if accounted != index["listed"]:
        raise IncompleteRunError(f"{job} run incomplete: {index['listed'] - accounted} of "
                                 f"{index['listed']} images sent to {name} have neither results "
                                 f"nor a reason (step {step}); nothing was published")
    expected = expected_records(index)
    if index["records"] != expected:
        raise IncompleteRunError(f"{job} run incomplete: {expected - index['records']} of "
                                 f"{expected} records missing from {name} (step {step}); "
                                 "nothing was published")
    path = posixpath.join(run_dir, name)
    if not tf.io.gfile.exists(path) or tf.io.gfile.stat(path).length != index["bytes"]:
        raise IncompleteRunError(f"{job} run incomplete: {name} is missing or not the size its "
                                 f"index says (step {step}); nothing was published")


def read_indexes(run_dir, *, job, step, expected_records=lambda index: len(index["entries"]),
                 reduce=None):
    """Checks that a run's shards account for every listed image; returns their indexes.

    The driver holds one full index at a time: each is checked, its per-image `entries` are
    replaced by the class names they hold (`label_names`), and `reduce` may shrink it further,
    so that the driver's memory follows the number of shards, not of images.

    Args:
        run_dir: the run's folder.
        job: the job's name, for messages (`embed`, `predict`).
        step: the name of the per-shard step, for messages.
        expected_records: the records a shard's index must report, from its entries. Defaults
            to one per image.
        reduce: `index -> index` applied to each checked index (e.g. folding its summaries into
            a running total). Defaults to None.

    Returns:
        `(listed, indexes)`: `{"listed", "num_shards"}` as `AssignShards` wrote it, and the
        reduced indexes of the shards that received images, in shard order.

    Raises:
        IncompleteRunError: a missing count or index, missing images or records, or a missing
            or truncated shard file.
    """
    listed = read_listed(run_dir, job=job)
    total, num_shards = listed["listed"], listed["num_shards"]
    paths = [posixpath.join(run_dir, layout.index_name(shard, num_shards))
             for shard in range(num_shards)]
    present = [path for path in paths if tf.io.gfile.exists(path)]
    accounted = sum(layout.read_index(path)["listed"] for path in present)
    if accounted != total:
        raise IncompleteRunError(
            f"{job} run incomplete: {total - accounted} of {total} listed images are missing "
            f"after step {step} (no index from {num_shards - len(present)} of {num_shards} "
            "shards); nothing was published")
    indexes = []
    for path in present:
        index = layout.read_index(path)
        _check_index(index, run_dir, job=job, step=step, expected_records=expected_records)
        index["label_names"] = sorted({entry["label_name"] for entry in index.pop("entries")})
        indexes.append(reduce(index) if reduce else index)
    return listed, indexes


def sorted_items(items, keep=("id", "path", "reason")):
    """`{id, path, reason}` of skipped (or other listed) items, sorted by id."""
    return sorted(({k: item[k] for k in keep if k in item} for item in items),
                  key=lambda item: item["id"])
