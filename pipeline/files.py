"""Atomic writes: a reader never sees half a file, on a local disk or on `gs://`.

Every file a job publishes is written to a temporary name beside its final one and renamed into
place: bytes through `write_bytes_atomic`, text through `write_text_atomic`, JSON through
`write_json_atomic`, and a file that a writer streams into (a TFRecord, a CSV, a figure) through
`atomic_output`, which hands out the temporary name (`atomic_path`) and renames it at the end.
"""
import contextlib
import hashlib
import json
import posixpath
import uuid

import tensorflow as tf

__all__ = ["atomic_path", "atomic_output", "write_bytes_atomic", "write_text_atomic",
           "write_json_atomic", "file_sha256", "first_damaged"]


def atomic_path(path):
    """A fresh temporary name beside `path`, to write to and then rename to `path`."""
    return f"{path}.tmp-{uuid.uuid4().hex}"


@contextlib.contextmanager
def atomic_output(path):
    """A temporary name beside `path` to write to, renamed to `path` when the block completes.

    When the block raises (a full disk, a killed writer), nothing is renamed and the partial
    temporary file is removed: `path` keeps its old content (or stays absent).

    Args:
        path: the final path (local or `gs://`).

    Yields:
        The temporary path (`atomic_path(path)`).

    Example:
        >>> with atomic_output("cache/embeddings-00000-of-00001.tfrecord") as tmp:
        ...     with tf.io.TFRecordWriter(tmp) as writer:
        ...         writer.write(record)
    """
    tmp = atomic_path(path)
    try:
        yield tmp
        tf.io.gfile.rename(tmp, path, overwrite=True)
    except BaseException:
        with contextlib.suppress(tf.errors.OpError, OSError):
            tf.io.gfile.remove(tmp)
        raise


def write_bytes_atomic(path, data):
    """Writes `data` to `path` through a temporary file and a rename."""
    with atomic_output(path) as tmp, tf.io.gfile.GFile(tmp, "wb") as handle:
        handle.write(data)


def write_text_atomic(path, text):
    """Writes `text` to `path` as UTF-8 through a temporary file and a rename."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, value):
    """Writes JSON to `path` through a temporary file and a rename, so readers never see half."""
    write_bytes_atomic(path, json.dumps(value, indent=2, sort_keys=True).encode())


def file_sha256(path, *, digest=None):
    """sha256 hex digest of a file's content (local or `gs://`), read in 1 MB blocks.

    Args:
        path: the file.
        digest: a `hashlib.sha256()` to add the content to (and whose digest is returned), to
            digest several files as one. Defaults to a fresh one.
    """
    digest = hashlib.sha256() if digest is None else digest
    with tf.io.gfile.GFile(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def first_damaged(folder, files, *, digests=True):
    """The first of a listing's files that is not as recorded, and how: `(path, "missing")` or
    `(path, "damaged")` (another size or, with `digests`, another sha256), or None when all are.

    The one check behind every listing of files an output keeps: a cache's and a prediction
    run's shards (`manifest.json`), a published folder's files (`published.json`).

    Args:
        folder: the output folder (local or `gs://`).
        files: `{file (relative to folder), bytes (optional), sha256}` entries.
        digests: compare each file's sha256 too (reads every file). Defaults to `True`.
    """
    for entry in files:
        path = posixpath.join(folder, entry["file"])
        try:
            size = tf.io.gfile.stat(path).length
        except tf.errors.NotFoundError:
            return path, "missing"
        if (entry.get("bytes") is not None and size != entry["bytes"]) or (
                digests and file_sha256(path) != entry["sha256"]):
            return path, "damaged"
    return None
