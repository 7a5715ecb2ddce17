"""Tests of pipeline.features.backbones: the registry, weights resolution, embeddings."""
import pathlib
import shutil

import keras
import numpy as np
import pytest

from pipeline.features import backbones
from pipeline.features.backbones import (
    BACKBONES,
    BackboneError,
    Embedder,
    Preprocess,
    build_backbone,
    find_weights,
    keras_weight_files,
    manifest_weights,
    weights_digest,
)

WEIGHTS = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "weights"
V2_050 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5"


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


def _offline(monkeypatch, keras_cache):
    """No network, and Keras's cache is `keras_cache`."""
    def fail(*args, **kwargs):
        raise Exception("URL fetch failure on https://example: None -- no network")
    monkeypatch.setattr(keras.utils, "get_file", fail)
    monkeypatch.setattr("keras.src.applications.mobilenet_v2.file_utils.get_file", fail)
    monkeypatch.setattr(backbones, "keras_cache_dir", lambda: str(keras_cache))


@pytest.fixture
def weights_dir():
    """The shared folder of real Keras weight files; skips when absent."""
    if not (WEIGHTS / V2_050).is_file():
        pytest.skip(f"{WEIGHTS} is not here")
    return str(WEIGHTS)


@pytest.mark.parametrize("name, kwargs, files", [
    ("mobilenet_v2", {"alpha": 0.5, "image_size": 96},
     ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_96_no_top.h5", V2_050)),
    ("mobilenet_v2", {"alpha": 0.5, "image_size": 100}, (V2_050,)),
    ("mobilenet", {"alpha": 0.25, "image_size": 160},
     ("mobilenet_2_5_160_tf_no_top.h5", "mobilenet_2_5_224_tf_no_top.h5")),
    ("mobilenet_v3_small", {}, ("weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",)),
    ("efficientnet_b0", {}, ("efficientnetb0_notop.h5",)),
    ("resnet50_v2", {}, ("resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",)),
])
def test_keras_weight_files_are_keras_names_size_specific_first(name, kwargs, files):
    assert keras_weight_files(name, **kwargs) == files


def test_find_weights_prefers_the_weights_dir_then_the_size_specific_file(tmp_path, monkeypatch):
    own, cache = tmp_path / "own", tmp_path / "cache"
    for folder, size in ((own, 224), (cache, 224), (cache, 96)):
        folder.mkdir(exist_ok=True)
        (folder / V2_050.replace("_224_", f"_{size}_")).touch()
    monkeypatch.setattr(backbones, "keras_cache_dir", lambda: str(cache))
    found = find_weights("mobilenet_v2", alpha=0.5, image_size=96, weights_dir=str(own))
    assert found == str(own / V2_050)
    assert find_weights("mobilenet_v2", alpha=0.5, image_size=96) == str(
        cache / V2_050.replace("_224_", "_96_"))


def test_weights_dir_file_loads_at_another_size_without_the_network(weights_dir, tmp_path,
                                                                     monkeypatch):
    _offline(monkeypatch, tmp_path)
    model, used = build_backbone("mobilenet_v2", image_size=96, alpha=0.5,
                                 weights_dir=weights_dir)
    assert used == str(WEIGHTS / V2_050) and model.output_shape == (None, 1280)


def test_keras_cache_and_weights_dir_give_the_same_digest(weights_dir, tmp_path, monkeypatch):
    (tmp_path / V2_050).symlink_to(WEIGHTS / V2_050)
    _offline(monkeypatch, tmp_path)
    _, used = build_backbone("mobilenet_v2", image_size=96, alpha=0.5)
    assert used == str(tmp_path / V2_050)
    assert weights_digest(used) == weights_digest(str(WEIGHTS / V2_050))


def test_a_remote_weights_dir_is_copied_to_a_local_file(weights_dir, tmp_path, monkeypatch):
    _offline(monkeypatch, tmp_path)
    _, used = build_backbone("mobilenet_v2", image_size=96, alpha=0.5,
                             weights_dir=f"file://{weights_dir}")
    assert used == f"file://{weights_dir}/{V2_050}"


@pytest.mark.parametrize("weights", ["imagenet", "auto"])
def test_weights_nowhere_offline_are_refused_in_one_line(weights, tmp_path, monkeypatch):
    _offline(monkeypatch, tmp_path)
    with pytest.raises(BackboneError, match=(
            f"no ImageNet weights for mobilenet_v2 .*looked for .*0.75_96_no_top.h5 or "
            f".*0.75_224_no_top.h5 in --weights-dir {tmp_path} and Keras's cache {tmp_path}, "
            "and Keras could not download it \\(no network\\); pass --weights-dir DIR .*"
            "--weights none")) as info:
        build_backbone("mobilenet_v2", image_size=96, alpha=0.75, weights=weights,
                       weights_dir=str(tmp_path))
    assert "\n" not in str(info.value)


def _manifest(used, weights_dir=None):
    return {"config": {"backbone": "mobilenet_v2", "alpha": 0.5, "image_size": 96,
                       "weights_dir": weights_dir},
            "weights_used": used, "weights_digest": weights_digest(str(WEIGHTS / V2_050))}


def test_manifest_weights_finds_the_same_file_in_the_cache_weights_dir(weights_dir, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setattr(backbones, "keras_cache_dir", lambda: str(tmp_path))
    gone = _manifest("/elsewhere/" + V2_050, weights_dir=weights_dir)
    assert manifest_weights(gone) == str(WEIGHTS / V2_050)


def test_manifest_weights_refuses_a_file_of_other_content(weights_dir, tmp_path, monkeypatch):
    other = tmp_path / "models"
    other.mkdir()
    shutil.copy(WEIGHTS / V2_050, other / V2_050)
    with open(other / V2_050, "ab") as handle:
        handle.write(b"changed")
    monkeypatch.setattr(backbones, "keras_cache_dir", lambda: str(other))
    with pytest.raises(BackboneError, match="weights file /elsewhere/.* is not here"):
        manifest_weights(_manifest("/elsewhere/" + V2_050))


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
