"""Reading a feature cache: a folder that is not a cache is refused in one line that says why."""
import json
import os
import shutil

import pytest

from pipeline.features import cache


@pytest.fixture
def cache_dir(tiny_cache):
    return tiny_cache.cache_dir


@pytest.mark.parametrize("make, reason", [
    (lambda cache_dir, faces, tmp: faces, "holds images, not embeddings"),
    (lambda cache_dir, faces, tmp: os.path.dirname(cache_dir),
     r"is a cache root holding 1 cache\(s\), not a cache: pass one of its folders "
     r"\([0-9a-f]{16}\)"),
    (lambda cache_dir, faces, tmp: str(tmp), "holds no cache"),
])
def test_a_folder_that_is_not_a_cache_is_named_for_what_it_is(cache_dir, faces, tmp_path,
                                                               make, reason):
    with pytest.raises(cache.CacheError, match=reason):
        cache.read_manifest(make(cache_dir, faces, tmp_path))


def test_a_manifest_without_a_caches_keys_is_refused(cache_dir, tmp_path):
    broken = shutil.copytree(cache_dir, tmp_path / "broken")
    manifest = json.loads((broken / "manifest.json").read_text())
    del manifest["shards"]
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(cache.CacheError, match="manifest.json lacks shards"):
        cache.load_split(str(broken), "train")


def test_several_splits_in_one_read_equal_each_split_read_alone(cache_dir):
    both = cache.load_splits(cache_dir, {"train": False, "val": True})
    for split, clean_only in (("train", False), ("val", True)):
        alone = cache.load_split(cache_dir, split, clean_only=clean_only)
        for name in ("ids", "embeddings", "labels", "copies", "digests"):
            assert (getattr(both[split], name) == getattr(alone, name)).all()
