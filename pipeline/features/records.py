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

__all__ = ["EmbeddingRecord", "records_per_image", "to_example", "from_example"]


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
            value=np.asarray(record.embedding, np.float32).ravel())),
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
