"""An embed run's account: the shards summed up for the manifest, or the run refused."""
import json
import shutil

import pytest

from pipeline.batch.accounting import LISTED_FILE
from pipeline.features.accounting import IncompleteRunError, RunAccount, account


@pytest.fixture
def run_dir(tiny_cache, tmp_path):
    """A copy of `tiny_cache` with the listing count its run wrote (dropped once published)."""
    copy = shutil.copytree(tiny_cache.cache_dir, tmp_path / "run")
    manifest = tiny_cache.manifest
    (copy / LISTED_FILE).write_text(json.dumps({"listed": manifest["listed"],
                                                "num_shards": manifest["num_shards"]}))
    return str(copy)


def test_the_account_of_a_complete_run_is_what_its_manifest_holds(run_dir, tiny_cache):
    run = account(run_dir, augment_copies=0, class_names=["neutral", "smiling"])
    manifest = tiny_cache.manifest
    assert isinstance(run, RunAccount)
    assert (run.listed, run.num_shards, run.embedding_dim) == (
        manifest["listed"], manifest["num_shards"], manifest["embedding_dim"])
    assert run.counts == manifest["counts"] and run.shards == manifest["shards"]
    assert run.fingerprint == manifest["source"]["fingerprint"]
    assert run.embedded + run.reused == run.listed == 24 and run.skipped == []
    assert sum(split["images"] for split in run.counts.values()) == 24


def test_training_images_short_of_their_copies_are_refused(run_dir):
    with pytest.raises(IncompleteRunError, match=r"records missing from .*step EmbedShard"):
        account(run_dir, augment_copies=1, class_names=None)


def test_a_class_with_no_readable_image_is_refused(run_dir):
    with pytest.raises(ValueError, match=r"class 'frowning' holds no readable image"):
        account(run_dir, augment_copies=0, class_names=["frowning", "neutral", "smiling"])
