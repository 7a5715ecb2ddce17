import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.training.ensemble import trained_model
from pipeline.training.selection import validation_score
from pipeline.training.tta import flip_tta_wanted, has_flip_tta, score_candidate, with_flip_tta


def _lopsided_model(num_outputs=3):
    """A model that sees left from right: logits from the left and right halves of the image."""
    inputs = keras.Input((4, 6, 3))
    x = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(num_outputs, kernel_initializer="glorot_uniform")(x)
    keras.utils.set_random_seed(0)
    return keras.Model(inputs, outputs, name="finetune")


@pytest.mark.parametrize("choice, flip, wanted", [
    ("auto", "horizontal", True), ("auto", "horizontal_and_vertical", True),
    ("auto", "vertical", False), ("auto", None, False), ("flip", None, True),
    ("none", "horizontal", False)])
def test_flip_tta_follows_the_caches_augmentation(choice, flip, wanted):
    assert flip_tta_wanted(choice, {"augment": {"flip": flip}}) is wanted


def test_unknown_choice_is_refused():
    with pytest.raises(ValueError, match="tta"):
        flip_tta_wanted("mirror", {"augment": {"flip": "horizontal"}})


def test_wrapped_model_averages_logits_over_the_mirror_and_survives_saving(tmp_path):
    model = _lopsided_model()
    images = np.random.default_rng(0).uniform(0, 255, (5, 4, 6, 3)).astype("float32")
    plain = model.predict(images, verbose=0)
    mirrored = model.predict(images[:, :, ::-1, :], verbose=0)
    assert np.abs(plain - mirrored).max() > 1e-3  # the model is not mirror-invariant
    wrapped = with_flip_tta(model)
    assert has_flip_tta(wrapped) and not has_flip_tta(model)
    assert with_flip_tta(wrapped) is wrapped and trained_model(wrapped) is model
    np.testing.assert_allclose(wrapped.predict(images, verbose=0), (plain + mirrored) / 2,
                               rtol=1e-5, atol=1e-5)
    wrapped.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert has_flip_tta(loaded)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), (plain + mirrored) / 2,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("flip_tta", [True, False])
def test_a_candidate_is_scored_the_way_it_ships(flip_tta):
    model = _lopsided_model()
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (12, 4, 6, 3)).astype("float32")
    labels = rng.integers(0, 3, 12)
    val = tf.data.Dataset.from_tensor_slices((images, labels)).batch(5)
    logs, score = score_candidate(model, val, labels, 3, flip_tta=flip_tta)
    plain = model.predict(images, verbose=0)
    assert logs["val_accuracy"] == validation_score(plain, labels, 3)["val_accuracy"]
    shipped = with_flip_tta(model) if flip_tta else model
    expected = {**validation_score(shipped.predict(images, verbose=0), labels, 3),
                "flip_tta": flip_tta}
    assert score == pytest.approx(expected, rel=1e-5)
    assert ("val_tta_accuracy" in logs) is flip_tta

