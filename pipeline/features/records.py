"""The `tf.train.Example` layout of one cached embedding.

Features:

| name | type | meaning |
|---|---|---|
| `id` | bytes | the example's stable id (relative path, or TFDS key) |
| `label` | int64 | class index into the manifest's `class_names` |
| `label_name` | bytes | the class name |
| `split` | bytes | `train`, `val` or `test` |
| `copy` | int64 | 0 for the clean image, 1..K for augmented copies |
| `embedding` | float list | the pooled backbone embedding (float32) |
| `digest` | bytes | sha256 hex of the encoded image (content address, for incremental runs) |
"""
import dataclasses

import numpy as np
import tensorflow as tf

__all__ = ["EmbeddingRecord", "records_per_image", "to_example", "from_example", "read_columns"]


@dataclasses.dataclass(frozen=True)
class EmbeddingRecord:
    """One cached embedding; see the module docstring for the meaning of each field."""

    id: str
    label: int
    label_name: str
    split: str
    copy: int
    embedding: np.ndarray
    digest: str = ""


def records_per_image(split, augment_copies):
    """How many records one image has: its clean copy, plus K augmented ones in training."""
    return 1 + (augment_copies if split == "train" else 0)


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))


def _int(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def to_example(record):
    """Serialises an `EmbeddingRecord` to `tf.train.Example` bytes."""
    features = {
        "id": _bytes(record.id),
        "label": _int(record.label),
        "label_name": _bytes(record.label_name),
        "split": _bytes(record.split),
        "copy": _int(record.copy),
        "embedding": tf.train.Feature(float_list=tf.train.FloatList(
            value=np.asarray(record.embedding, np.float32).ravel().tolist())),  # 8x faster
        "digest": _bytes(record.digest),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    # Deterministic: map fields in key order, so the same record is the same bytes everywhere.
    return example.SerializeToString(deterministic=True)


def from_example(serialized):
    """Parses `tf.train.Example` bytes written by `to_example` back to an `EmbeddingRecord`."""
    feature = tf.train.Example.FromString(serialized).features.feature
    return EmbeddingRecord(
        id=feature["id"].bytes_list.value[0].decode(),
        label=int(feature["label"].int64_list.value[0]),
        label_name=feature["label_name"].bytes_list.value[0].decode(),
        split=feature["split"].bytes_list.value[0].decode(),
        copy=int(feature["copy"].int64_list.value[0]),
        embedding=np.asarray(feature["embedding"].float_list.value, np.float32),
        digest=feature["digest"].bytes_list.value[0].decode() if "digest" in feature else "")


def read_columns(paths, embedding_dim, *, batch_size=4096):
    """Every record of TFRecord files `paths` as numpy columns, parsed in batches (a vectorised
    `from_example`, many times faster than one record at a time).

    Returns:
        `{"id", "label_name", "split", "digest"}` as str arrays, `{"label", "copy"}` as int64
        arrays and `"embedding"` as a float32 array (n, embedding_dim), in file order.
    """
    spec = {"id": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
            "label_name": tf.io.FixedLenFeature([], tf.string),
            "split": tf.io.FixedLenFeature([], tf.string),
            "copy": tf.io.FixedLenFeature([], tf.int64),
            "embedding": tf.io.FixedLenFeature([embedding_dim], tf.float32),
            "digest": tf.io.FixedLenFeature([], tf.string, default_value="")}
    batches = (tf.data.TFRecordDataset(paths).batch(batch_size)
               .map(lambda serialized: tf.io.parse_example(serialized, spec)))
    parts = {name: [] for name in spec}
    for batch in batches.as_numpy_iterator():
        for name, values in batch.items():
            parts[name].append(values)
    columns = {name: np.concatenate(values) if values else np.zeros(
        (0, embedding_dim) if name == "embedding" else (0,), spec[name].dtype.as_numpy_dtype)
        for name, values in parts.items()}
    for name in ("id", "label_name", "split", "digest"):
        columns[name] = np.array([value.decode() for value in columns[name]], dtype=str)
    return columns
