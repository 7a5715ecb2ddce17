"""The feature cache's shard files: TFRecords of embedding records, written whole.

The layout (which shard an image goes to, the index beside each shard) is the one every pass
shares, `pipeline.batch.layout`; this module adds the cache's own file: each shard's records
sorted by (id, copy), written through a temporary file renamed into place.
"""
import tensorflow as tf

from pipeline.batch.layout import (IMAGES_PER_SHARD, auto_num_shards, index_name, read_index,
                                   shard_file, shard_of, write_index)
from pipeline.files import atomic_output, file_sha256

__all__ = ["IMAGES_PER_SHARD", "SHARD_PREFIX", "shard_of", "auto_num_shards", "shard_name",
           "index_name", "write_shard", "write_index", "read_index", "read_shard_records"]

SHARD_PREFIX = "embeddings"


def shard_name(index, num_shards):
    """`embeddings-SSSSS-of-NNNNN.tfrecord`."""
    return shard_file(SHARD_PREFIX, "tfrecord", index, num_shards)


def write_shard(path, records):
    """Writes serialized records to a TFRecord file through a temporary file and a rename.

    Args:
        path: the shard's final path.
        records: an iterable of serialized `tf.train.Example` bytes, in the order to write.

    Returns:
        `{"records": n, "sha256": hex, "bytes": size}` of what was written.
    """
    count = 0
    with atomic_output(path) as tmp:
        with tf.io.TFRecordWriter(tmp) as writer:
            for record in records:
                writer.write(record)
                count += 1
        written = {"records": count, "sha256": file_sha256(tmp),
                   "bytes": tf.io.gfile.stat(tmp).length}
    return written


def read_shard_records(path):
    """Yields the serialized records of a TFRecord shard, in file order."""
    for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
        yield serialized
