"""The fine-tune job's images: the cache's split, in id order, decoded and resized as embedded."""
import dataclasses
import os
import shutil

import numpy as np
import pytest

from pipeline.data.images import load_image
from pipeline.training.image_data import face_boxes, image_dataset, pixel_cache_key, split_refs


def test_split_refs_are_the_caches_splits_in_id_order(tiny_cache):
    manifest = tiny_cache.manifest
    train, val = split_refs(manifest)
    assert (len(train), len(val)) == (manifest["counts"]["train"]["images"],
                                      manifest["counts"]["val"]["images"])
    for refs, split in ((train, "train"), (val, "val")):
        assert [r.id for r in refs] == sorted(r.id for r in refs)
        assert {r.split for r in refs} == {split}


def test_split_refs_refuse_changed_data_and_old_caches(tiny_cache, faces, tmp_path):
    data = shutil.copytree(faces, tmp_path / "data")
    source = {**tiny_cache.manifest["source"], "root": str(data), "location": str(data)}
    manifest = {**tiny_cache.manifest, "source": source}
    (data / "smiling" / "smiling_0000.jpg").write_bytes(b"other bytes")
    with pytest.raises(ValueError, match="changed since cache .* run `python -m jobs.embed`"):
        split_refs(manifest)
    source.pop("location")  # a cache made before it was recorded: the folder is its root
    with pytest.raises(ValueError, match=f"data '{data}' changed since cache"):
        split_refs(manifest)
    with pytest.raises(ValueError, match="made by an older embed job"):
        split_refs({**manifest, "format_version": -1})
    with pytest.raises(ValueError, match="needs a cache of image files or of TFDS"):
        split_refs({**manifest, "source": {"root": None}})


def test_split_refs_of_a_tfds_cache_are_its_splits_written_as_files(tmp_path):
    import tensorflow_datasets as tfds

    from jobs import embed
    from pipeline.features import cache
    from tests.conftest import IN_MEMORY, TINY

    with tfds.testing.mock_data(num_examples=4):
        result = embed.run(["--data", "tfds:beans", "--cache-dir", str(tmp_path / "cache"),
                            *TINY, "--augment-copies", "0", *IN_MEMORY])
        with pytest.raises(ValueError, match="images are in TFDS 'tfds:beans', not in files"):
            split_refs(result.manifest)
        train, val = split_refs(result.manifest, image_dir=str(tmp_path / "images"))
    for refs, split in ((train, "train"), (val, "val")):
        cached = cache.load_split(result.cache_dir, split, clean_only=True)
        assert [r.id for r in refs] == cached.ids.tolist()
        assert [r.digest for r in refs] == cached.digests.tolist()
        assert all(os.path.isfile(r.path) for r in refs)
    assert len(os.listdir(tmp_path / "images")) == len({r.digest for r in train + val})
    with tfds.testing.mock_data(num_examples=5):  # other data under the same name
        with pytest.raises(ValueError, match="data 'tfds:beans' changed since cache"):
            split_refs(result.manifest, image_dir=str(tmp_path / "other"))


def test_image_dataset_gives_resized_batches_with_their_labels(tiny_cache):
    _, val = split_refs(tiny_cache.manifest)
    batches = list(image_dataset(val, 32, batch_size=4).as_numpy_iterator())
    images = np.concatenate([x for x, _ in batches])
    assert images.shape == (len(val), 32, 32, 3) and 0 <= images.min() <= images.max() <= 255
    assert np.concatenate([y for _, y in batches]).tolist() == [r.label for r in val]


def test_no_paths_have_no_face_boxes():
    assert face_boxes([]).shape == (0, 4)


def _passes(data, count=2):
    return [list(data.as_numpy_iterator()) for _ in range(count)]


@pytest.mark.parametrize("budget", [1 << 30, 0], ids=["memory", "disk"])
def test_pixel_cache_gives_the_batches_decoded_every_pass_bit_for_bit(tiny_cache, tmp_path,
                                                                       budget):
    train, _ = split_refs(tiny_cache.manifest)
    kwargs = {"batch_size": 5, "shuffle_seed": 7}
    plain = _passes(image_dataset(train, 32, **kwargs))
    cached = _passes(image_dataset(train, 32, pixel_cache=str(tmp_path / "pixels"),
                                   memory_budget=budget, **kwargs))
    assert len(plain[0]) == len(cached[0]) == 4
    for plain_pass, cached_pass in zip(plain, cached):
        for (x, y), (cx, cy) in zip(plain_pass, cached_pass):
            assert x.dtype == cx.dtype and x.tobytes() == cx.tobytes() and (y == cy).all()
    assert [y.tolist() for _, y in plain[0]] != [y.tolist() for _, y in plain[1]]  # reshuffled
    assert os.path.isdir(tmp_path / "pixels") == (budget == 0)  # a file only beyond the budget


def test_cached_pixels_are_the_decoded_jpeg_bit_for_bit(tiny_cache, tmp_path):
    _, val = split_refs(tiny_cache.manifest)
    data = image_dataset(val, 40, batch_size=64, pixel_cache=str(tmp_path), memory_budget=0)
    for _ in range(2):  # the pass that writes the file, then the one that reads it
        images = next(data.as_numpy_iterator())[0]
        for ref, image in zip(val, images):
            with open(ref.path, "rb") as handle:
                assert image.tobytes() == load_image(handle.read(), 40).tobytes()
    assert [f for f in os.listdir(tmp_path) if f.startswith("pixels-")]


def test_pixel_cache_key_changes_with_size_crop_and_data(tiny_cache, tmp_path):
    train, _ = split_refs(tiny_cache.manifest)
    key = pixel_cache_key(train, 32, False)
    copy = shutil.copyfile(train[0].path, tmp_path / "a.jpg")
    copied = [dataclasses.replace(train[0], path=str(copy)), *train[1:]]
    before = pixel_cache_key(copied, 32, False)
    copy.write_bytes(copy.read_bytes() + b"more")  # the same path, other bytes
    others = {pixel_cache_key(train, 48, False), pixel_cache_key(train, 32, True),
              pixel_cache_key(train[1:], 32, False), before, pixel_cache_key(copied, 32, False)}
    assert key == pixel_cache_key(list(train), 32, False) and key not in others
    assert len(others) == 5
