"""What one shard step has done: its entries, the files it skipped and why, and what it will
not read.

`ShardState` is a shard's bookkeeping while its step runs (`pipeline.batch.spine.ShardFn`): the
images with results, the skipped files with their reasons (`reason_of`), what waits for the
model. `refused_items` sets aside, before anything is read, what the listing refused (a name that
is not UTF-8 text) and the second entry of an id listed twice.
"""
import collections

from pipeline import errors
from pipeline.data.fingerprint import combine_hashes, entry_hash

__all__ = ["ShardState", "reason_of", "refused_items"]


def refused_items(items):
    """`(items to read, [(ref, reason)])`: a ref whose listing refused it (`ExampleRef.skip`),
    and every ref after the first of an id listed twice (a list naming one file twice), are
    not read. Sorted by id, then path and label, so that which one is kept does not depend on
    the order the runner delivered them in."""
    items = sorted(items, key=lambda item: (item[1][0].id, item[1][0].path,
                                            item[1][0].label_name))
    kept, refused = [], []
    for item in items:
        ref = item[1][0]
        if ref.skip:
            refused.append((ref, ref.skip))
        elif kept and kept[-1][1][0].id == ref.id:
            refused.append((ref, f"listed twice: the id {ref.id!r} is taken by "
                                 f"{kept[-1][1][0].path or 'an earlier entry'}"))
        else:
            kept.append(item)
    return kept, refused


def reason_of(err):
    """A skipped file's reason, in one line: the project's words for a file-system error, else
    the error's first line."""
    return errors.cause(err) or (str(err).strip().splitlines() or [type(err).__name__])[0]


class ShardState:
    """What one shard has done so far.

    Attributes:
        shard, num_shards, listed: the shard, the shard count, the images sent to it.
        entries: `{id, label_name, split, digest}` of every image with results, for the index.
        skipped: `{id, path, label_name, digest, reason}` of files that could not be used.
        no_face: `{id, path}` of images where face crop found no face.
        pending: what waits for the model: `(image, item)` pairs, the item the step's own.
        in_flight: the batch on the model thread, `(items, future)`, or None.
        results: what the step will write (the step's own items).
        computed, reused: images run through the model, and images copied from a base.
        counters: the step's own counts, written into the index as they are.
        base_faults: files of the base output found damaged (their images are run again).
    """

    def __init__(self, shard, num_shards, listed):
        self.shard, self.num_shards, self.listed = shard, num_shards, listed
        self.entries, self.skipped, self.no_face = [], [], []
        self.pending, self.results, self.in_flight = [], [], None
        self.computed = self.reused = 0
        self.counters = collections.Counter()
        self.base_faults = []

    def add_entry(self, ref):
        self.entries.append({"id": ref.id, "label_name": ref.label_name, "split": ref.split,
                             "digest": ref.digest})

    def skip(self, ref, err):
        self.skipped.append({"id": ref.id, "path": ref.path, "label_name": ref.label_name,
                             "digest": ref.digest or "unreadable", "reason": reason_of(err)})

    def fingerprint(self):
        """This shard's part of the data fingerprint (every listed image, skipped ones too)."""
        return combine_hashes(entry_hash(item["id"], item.get("label_name", ""), item["digest"])
                              for item in self.entries + self.skipped)
