"""The cache's shard layout: which shard an example goes to, and writing a shard whole.

Records are assigned to shards by a hash of their id, so the layout follows from the ids alone,
whatever the runner or its bundles. Each shard is written whole by one step after a
`GroupByKey` (as TFDS's Beam writer does): its records sorted by (id, copy), into a temporary
file renamed into place, followed by its *index* (`index-SSSSS-of-NNNNN.json`): the ids, splits
and content digests it holds, what it skipped and why, its record counts and sha256. The job's
driver checks the indexes against the listing before it publishes anything, and a later run
reads them to reuse the records of unchanged images.
"""
import hashlib
import json
import math
import uuid

import tensorflow as tf

from pipeline.features.cache import write_json_atomic

__all__ = ["IMAGES_PER_SHARD", "SHARD_PREFIX", "shard_of", "auto_num_shards", "shard_name",
           "index_name", "write_shard", "write_index", "read_index", "read_shard_records"]

#: Default shard size, in images (about 15 MB of records with K = 2 and 1,280-d embeddings).
IMAGES_PER_SHARD = 1000
SHARD_PREFIX = "embeddings"


def shard_of(example_id, num_shards):
    """The shard (0..num_shards-1) of an example id: a stable hash, independent of the runner."""
    digest = hashlib.sha256(example_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def auto_num_shards(num_images, images_per_shard=IMAGES_PER_SHARD):
    """The shard count for `num_images` images: one shard per `images_per_shard`, at least one."""
    return max(1, math.ceil(num_images / images_per_shard))


def shard_name(index, num_shards):
    """`embeddings-SSSSS-of-NNNNN.tfrecord`."""
    return f"{SHARD_PREFIX}-{index:05d}-of-{num_shards:05d}.tfrecord"


def index_name(index, num_shards):
    """`index-SSSSS-of-NNNNN.json`, the shard's index beside it."""
    return f"index-{index:05d}-of-{num_shards:05d}.json"


def _atomic_path(path):
    return f"{path}.tmp-{uuid.uuid4().hex}"


def write_shard(path, records):
    """Writes serialized records to a TFRecord file through a temporary file and a rename.

    Args:
        path: the shard's final path.
        records: an iterable of serialized `tf.train.Example` bytes, in the order to write.

    Returns:
        `{"records": n, "sha256": hex, "bytes": size}` of what was written.
    """
    tmp, digest, count = _atomic_path(path), hashlib.sha256(), 0
    with tf.io.TFRecordWriter(tmp) as writer:
        for record in records:
            writer.write(record)
            count += 1
    with tf.io.gfile.GFile(tmp, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    size = tf.io.gfile.stat(tmp).length
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return {"records": count, "sha256": digest.hexdigest(), "bytes": size}


def write_index(path, index):
    """Writes a shard's index (a JSON-ready dict) atomically."""
    write_json_atomic(path, index)


def read_index(path):
    """Reads a shard's index, or returns None when there is none."""
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def read_shard_records(path):
    """Yields the serialized records of a TFRecord shard, in file order."""
    for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
        yield serialized
