import keras
import numpy as np
import pytest

from pipeline import backbones
from pipeline.backbones import BACKBONES, BackboneError, Embedder, Preprocess, build_backbone


def test_unknown_backbone_lists_the_valid_names():
    with pytest.raises(ValueError, match="backbone: expected one of .*mobilenet_v2"):
        build_backbone("alexnet")


@pytest.mark.parametrize("size", [8, 5000])
def test_bad_image_size_is_refused(size):
    with pytest.raises(ValueError, match="image_size"):
        build_backbone("mobilenet_v2", image_size=size, weights=None)


def test_alpha_on_a_backbone_without_one_is_refused():
    with pytest.raises(ValueError, match="has no width multiplier"):
        build_backbone("resnet50", alpha=0.5, weights=None)


def test_missing_weights_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        build_backbone("mobilenet", weights=str(tmp_path / "nope.h5"))


def test_weights_of_another_architecture_are_refused(mobilenet_weights):
    with pytest.raises(BackboneError, match="does not fit backbone mobilenet_v2"):
        build_backbone("mobilenet_v2", image_size=96, weights=mobilenet_weights)


def _offline(monkeypatch):
    def fail(*args, **kwargs):
        raise Exception("URL fetch failure on https://example: no network")
    monkeypatch.setattr(keras.utils, "get_file", fail)
    monkeypatch.setattr("keras.src.applications.mobilenet_v2.file_utils.get_file", fail)


def test_imagenet_offline_fails_with_one_line(monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(BackboneError, match="could not get ImageNet weights") as info:
        build_backbone("mobilenet_v2", image_size=96, alpha=0.35, weights="imagenet")
    assert "\n" not in str(info.value)


def test_auto_falls_back_to_random_weights_loudly(monkeypatch):
    _offline(monkeypatch)
    with pytest.warns(UserWarning, match="FALLING BACK TO RANDOM WEIGHTS"):
        model, used = build_backbone("mobilenet_v2", image_size=96, alpha=0.35, weights="auto")
    assert used is None and not model.trainable


def test_real_weights_give_256_d_embeddings(mobilenet_weights):
    embed = Embedder("mobilenet", image_size=64, alpha=0.25, weights=mobilenet_weights)
    vectors = embed(np.random.default_rng(0).uniform(0, 255, (3, 64, 64, 3)))
    assert vectors.shape == (3, 256) and embed.weights_used == mobilenet_weights
    assert np.isfinite(vectors).all()


def test_preprocess_layer_round_trips_through_keras_config():
    layer = Preprocess("resnet50")
    clone = Preprocess.from_config(layer.get_config())
    images = np.full((1, 4, 4, 3), 100.0, np.float32)
    np.testing.assert_allclose(clone(images), keras.applications.resnet50.preprocess_input(
        images.copy()))


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_registered_backbone_has_a_constructor_and_preprocess(name):
    spec = backbones.get_spec(name)
    assert callable(getattr(keras.applications, spec.constructor))
    assert callable(getattr(keras.applications, spec.module).preprocess_input)


def test_random_weights_are_the_same_network_in_every_build():
    first, _ = build_backbone("mobilenet_v2", image_size=48, alpha=0.35, weights=None)
    second, _ = build_backbone("mobilenet_v2", image_size=48, alpha=0.35, weights=None)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
