"""Atomic writes: the final file holds the whole content, and no temporary file is left."""
import hashlib
import json
import os

import pytest

from pipeline.files import (atomic_output, atomic_path, file_sha256, first_damaged,
                            write_bytes_atomic, write_json_atomic)


def test_atomic_paths_are_fresh_names_beside_the_file(tmp_path):
    path = str(tmp_path / "a.json")
    first, second = atomic_path(path), atomic_path(path)
    assert first != second and first.startswith(f"{path}.tmp-")


def test_write_bytes_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old content, longer than the new")
    write_bytes_atomic(str(path), b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_write_json_is_sorted_and_indented(tmp_path):
    path = tmp_path / "manifest.json"
    write_json_atomic(str(path), {"b": 1, "a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    assert path.read_text() == json.dumps({"a": [1, 2], "b": 1}, indent=2, sort_keys=True)


def test_file_sha256_is_the_content_digest_across_blocks(tmp_path):
    data = bytes(range(256)) * 5000  # more than one 1 MB block
    (tmp_path / "big").write_bytes(data)
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(str(tmp_path / "big")) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(tmp_path / "empty")) == hashlib.sha256(b"").hexdigest()


def test_a_write_that_fails_keeps_the_old_file_and_removes_its_partial_temporary(tmp_path):
    path = tmp_path / "shard.tfrecord"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_output(str(path)) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"half a shard")
            raise OSError("disk full")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["shard.tfrecord"]


def test_first_damaged_names_the_first_missing_or_altered_file(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    (tmp_path / "b").write_bytes(b"xyz")
    listing = [{"file": name, "bytes": 3, "sha256": file_sha256(str(tmp_path / name))}
               for name in ("a", "b")]
    assert first_damaged(str(tmp_path), listing) is None
    (tmp_path / "b").write_bytes(b"xyZ")  # same size, other bytes
    assert first_damaged(str(tmp_path), listing) == (str(tmp_path / "b"), "damaged")
    assert first_damaged(str(tmp_path), listing, digests=False) is None
    (tmp_path / "a").unlink()
    assert first_damaged(str(tmp_path), listing) == (str(tmp_path / "a"), "missing")
