"""Accounting for an embed run: every listed image has its records or a reason, or nothing is
published.

`account()` runs the pass's checks (`pipeline.batch.accounting.read_indexes`: every listed image
reached a shard, each shard holds it or a reason, its file is whole) with the cache's own rule
for records (the clean record plus K copies for training images), checks that every class keeps
an image, and sums the shards up for the manifest.
"""
import collections
import dataclasses
import json

from pipeline.batch.accounting import IncompleteRunError, read_indexes, sorted_items
from pipeline.data.fingerprint import combine_hashes
from pipeline.features.records import records_per_image

__all__ = ["IncompleteRunError", "RunAccount", "account"]


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
        base_faults: files of the previous cache found damaged (their images embedded again).
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
    base_faults: list = dataclasses.field(default_factory=list)


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
        IncompleteRunError: a missing count or index, missing images or records, or a missing
            or truncated shard file.
        ValueError: a class left with no readable image.
    """
    listed, indexes = read_indexes(
        run_dir, job="embed", step="EmbedShard",
        expected_records=lambda index: sum(records_per_image(entry["split"], augment_copies)
                                           for entry in index["entries"]))
    if class_names:
        _check_classes(indexes, class_names)
    return RunAccount(
        listed=listed["listed"], num_shards=listed["num_shards"], counts=_nest_counts(indexes),
        skipped=sorted_items(item for index in indexes for item in index["skipped"]),
        no_face=sorted_items(item for index in indexes for item in index["no_face"]),
        shards=[{key: index[key] for key in ("file", "sha256", "bytes", "records")}
                for index in indexes],
        fingerprint=combine_hashes(int(index["fingerprint"], 16) for index in indexes),
        embedded=sum(index["embedded"] for index in indexes),
        reused=sum(index["reused"] for index in indexes),
        embedding_dim=max((index["embedding_dim"] for index in indexes), default=0),
        base_faults=sorted({fault for index in indexes for fault in index.get("base_faults", ())}))


def _check_classes(indexes, class_names):
    found = {name for index in indexes for name in index["label_names"]}
    empty = [name for name in class_names if name not in found]
    if empty:
        raise ValueError(f"data: class {empty[0]!r} holds no readable image "
                         f"({len(empty)} such class(es)); nothing was published")
