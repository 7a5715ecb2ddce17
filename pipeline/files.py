"""Atomic writes: a reader never sees half a file, on a local disk or on `gs://`.

Every file a job publishes is written to a temporary name beside its final one and renamed into
place (`atomic_path`); JSON files through `write_json_atomic`.
"""
import hashlib
import json
import uuid

import tensorflow as tf

__all__ = ["atomic_path", "write_json_atomic", "write_bytes_atomic", "file_sha256"]


def atomic_path(path):
    """A fresh temporary name beside `path`, to write to and then rename to `path`."""
    return f"{path}.tmp-{uuid.uuid4().hex}"


def write_bytes_atomic(path, data):
    """Writes `data` to `path` through a temporary file and a rename."""
    tmp = atomic_path(path)
    with tf.io.gfile.GFile(tmp, "wb") as handle:
        handle.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def write_json_atomic(path, value):
    """Writes JSON to `path` through a temporary file and a rename, so readers never see half."""
    write_bytes_atomic(path, json.dumps(value, indent=2, sort_keys=True).encode())


def file_sha256(path):
    """sha256 hex digest of a file's content (local or `gs://`), read in 1 MB blocks."""
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
