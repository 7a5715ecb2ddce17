"""The fine-tune job's images: the cache's split, in id order, decoded and resized as embedded."""
import shutil

import numpy as np
import pytest

from pipeline.training.image_data import face_boxes, image_dataset, split_refs


def test_split_refs_are_the_caches_splits_in_id_order(tiny_cache):
    manifest = tiny_cache.manifest
    train, val = split_refs(manifest)
    assert (len(train), len(val)) == (manifest["counts"]["train"]["images"],
                                      manifest["counts"]["val"]["images"])
    for refs, split in ((train, "train"), (val, "val")):
        assert [r.id for r in refs] == sorted(r.id for r in refs)
        assert {r.split for r in refs} == {split}


def test_split_refs_refuse_changed_data_old_caches_and_tfds(tiny_cache, faces, tmp_path):
    data = shutil.copytree(faces, tmp_path / "data")
    manifest = {**tiny_cache.manifest,
                "source": {**tiny_cache.manifest["source"], "root": str(data)}}
    (data / "smiling" / "smiling_0000.jpg").write_bytes(b"other bytes")
    with pytest.raises(ValueError, match="changed since cache .* run `python -m jobs.embed`"):
        split_refs(manifest)
    with pytest.raises(ValueError, match="made by an older embed job"):
        split_refs({**manifest, "format_version": -1})
    with pytest.raises(ValueError, match="needs a class-folder cache"):
        split_refs({**manifest, "source": {"root": None}})


def test_image_dataset_gives_resized_batches_with_their_labels(tiny_cache):
    _, val = split_refs(tiny_cache.manifest)
    batches = list(image_dataset(val, 32, batch_size=4).as_numpy_iterator())
    images = np.concatenate([x for x, _ in batches])
    assert images.shape == (len(val), 32, 32, 3) and 0 <= images.min() <= images.max() <= 255
    assert np.concatenate([y for _, y in batches]).tolist() == [r.label for r in val]


def test_no_paths_have_no_face_boxes():
    assert face_boxes([]).shape == (0, 4)
