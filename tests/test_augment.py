import dataclasses

import numpy as np
import pytest

from pipeline.data.augment import (AugmentConfig, CopyAugmenter, build_augmenter, mixup_batches,
                                   parse_augment)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).uniform(0, 255, (32, 32, 3)).astype(np.float32)


def test_copies_are_deterministic_across_instances(image):
    first = CopyAugmenter(AugmentConfig(), seed=5)(image, example_id="a/1.jpg", copy=1)
    second = CopyAugmenter(AugmentConfig(), seed=5)(image, example_id="a/1.jpg", copy=1)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("change", [{"copy": 2}, {"example_id": "a/2.jpg"}, {"seed": 6}])
def test_copies_differ_by_copy_id_and_seed(image, change):
    base = {"seed": 5, "example_id": "a/1.jpg", "copy": 1}
    other = {**base, **change}
    first = CopyAugmenter(AugmentConfig(), seed=base["seed"])(
        image, example_id=base["example_id"], copy=base["copy"])
    second = CopyAugmenter(AugmentConfig(), seed=other["seed"])(
        image, example_id=other["example_id"], copy=other["copy"])
    assert np.abs(first - second).max() > 1.0


def test_augmented_copy_changes_the_image_and_keeps_its_shape(image):
    copy = CopyAugmenter(AugmentConfig(), seed=1)(image, example_id="x", copy=1)
    assert copy.shape == image.shape and copy.dtype == np.float32
    assert np.abs(copy - image).max() > 1.0


def test_no_augmentation_returns_the_image(image):
    copy = CopyAugmenter(AugmentConfig.none(), seed=1)(image, example_id="x", copy=1)
    np.testing.assert_array_equal(copy, image)


def test_parse_default_and_named_ops():
    assert parse_augment("default") == AugmentConfig()
    assert parse_augment("none") == AugmentConfig.none()
    config = parse_augment("flip=vertical,brightness=0.2,height=0.1")
    assert dataclasses.asdict(config) == {**dataclasses.asdict(AugmentConfig.none()),
                                          "flip": "vertical", "brightness": 0.2, "height": 0.1}
    assert len(build_augmenter(config)) == 3


@pytest.mark.parametrize("spec, message", [
    ("spin=0.1", "augment op: expected one of"),
    ("rotation", "expected rotation=VALUE"),
    ("rotation=lots", "expected a number"),
    ("rotation=2", "rotation: expected a value"),
    ("flip=diagonal", "flip: expected one of"),
])
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_augment(spec)


def test_all_ops_run(image):
    config = parse_augment("flip=horizontal,rotation=0.1,zoom=0.1,contrast=0.1,"
                           "translation=0.1,brightness=0.1,height=0.1,width=0.1")
    copy = CopyAugmenter(config, seed=3)(image, example_id="x", copy=1)
    assert copy.shape == image.shape


def _mixed(seed, alpha=0.4):
    import tensorflow as tf

    images = np.arange(4 * 2 * 2 * 3, dtype=np.float32).reshape(4, 2, 2, 3)
    targets = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    batches = tf.data.Dataset.from_tensor_slices((images, targets)).batch(4)
    [(x, y)] = [(x.numpy(), y.numpy()) for x, y in mixup_batches(batches, alpha=alpha,
                                                                  seed=seed)]
    return images, targets, x, y


def test_mixup_mixes_each_example_with_its_mirror_by_one_weight():
    images, _, x, y = _mixed(seed=7)
    # example 0 (class 0) is mixed with example 3 (class 0) and 1 (class 1) with 2 (class 2)
    weight = y[1, 1]
    assert 0.0 < weight < 1.0 and y[1, 2] == pytest.approx(1 - weight)
    np.testing.assert_allclose(x[1], weight * images[1] + (1 - weight) * images[2], rtol=1e-5)
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
    assert x.shape == images.shape


def test_mixup_is_deterministic_per_seed():
    _, _, x, y = _mixed(seed=7)
    _, _, x_again, y_again = _mixed(seed=7)
    _, _, x_other, _ = _mixed(seed=8)
    np.testing.assert_array_equal(x, x_again)
    np.testing.assert_array_equal(y, y_again)
    assert not np.allclose(x, x_other)
