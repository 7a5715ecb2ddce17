"""The shard layout every pass writes: which shard an image goes to, file names, indexes.

Images are assigned to shards by a hash of their id, so the layout follows from the ids alone,
whatever the runner or its bundles. Each shard is written whole by one step (its results in id
order, a temporary file renamed into place), followed by its *index*
(`index-SSSSS-of-NNNNN.json`): the ids, classes and content digests it holds, what it skipped and
why, its counts and sha256. The driver checks the indexes against the listing before it
publishes anything, and a later run reads them to reuse the results of unchanged images.
"""
import hashlib
import json
import math

import tensorflow as tf

from pipeline.files import write_json_atomic

__all__ = ["IMAGES_PER_SHARD", "shard_of", "auto_num_shards", "shard_file", "index_name",
           "write_index", "read_index"]

#: Default shard size, in images.
IMAGES_PER_SHARD = 1000


def shard_of(example_id, num_shards):
    """The shard (0..num_shards-1) of an example id: a stable hash, independent of the runner."""
    digest = hashlib.sha256(example_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def auto_num_shards(num_images, images_per_shard=IMAGES_PER_SHARD):
    """The shard count for `num_images` images: one shard per `images_per_shard`, at least one."""
    return max(1, math.ceil(num_images / images_per_shard))


def shard_file(prefix, extension, index, num_shards):
    """`PREFIX-SSSSS-of-NNNNN.EXTENSION`."""
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.{extension}"


def index_name(index, num_shards):
    """`index-SSSSS-of-NNNNN.json`, the shard's index beside it."""
    return f"index-{index:05d}-of-{num_shards:05d}.json"


def write_index(path, index):
    """Writes a shard's index (a JSON-ready dict) atomically."""
    write_json_atomic(path, index)


def read_index(path):
    """Reads a shard's index, or returns None when there is none."""
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)
