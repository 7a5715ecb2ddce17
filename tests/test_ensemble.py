"""The shipped ensemble: its mixture, its weight, and when the head ships alone."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.training import ensemble
from pipeline.training.heads import logits_to_proba
from pipeline.training.tta import has_flip_tta, with_flip_tta


def _model(outputs, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 6, 3))
    logits = keras.layers.Dense(outputs)(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, logits, name="finetune")


@pytest.mark.parametrize("num_classes", [2, 4])
def test_the_saved_ensemble_gives_the_weighted_average_of_its_members(num_classes, tmp_path):
    outputs = 1 if num_classes == 2 else num_classes
    tuned, head = with_flip_tta(_model(outputs, 0)), _model(outputs, 1)
    images = np.random.default_rng(0).uniform(0, 255, (6, 4, 6, 3)).astype("float32")
    members = [logits_to_proba(m.predict(images, verbose=0), num_classes) for m in (tuned, head)]
    model = ensemble.ensemble_model(tuned, head, 0.3, num_classes)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    ours = logits_to_proba(loaded.predict(images, verbose=0), num_classes)
    np.testing.assert_allclose(ours, 0.3 * members[0] + 0.7 * members[1], atol=1e-6)
    assert ensemble.is_ensemble(loaded) and has_flip_tta(loaded)
    assert ensemble.trained_model(loaded).name == "finetune"  # inside the mirror wrapper
    assert not ensemble.is_ensemble(ensemble.members(loaded)[1])


def test_the_weight_follows_clear_evidence_and_stays_between_the_members_on_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    right = np.eye(3)[y] * 0.8 + 0.2 / 3  # a good model
    noise = rng.dirichlet(np.ones(3), 300)  # a useless one
    clear = ensemble.choose_weight(y, right, noise)
    assert clear["weight"] == clear["fitted_weight"] == 1.0 and clear["images"] == 300
    assert ensemble.choose_weight(y, noise, right)["weight"] == 0.0
    # two members as good as each other, each right where the other errs half the time
    first = np.where(rng.random(300)[:, None] < 0.7, np.eye(3)[y], np.eye(3)[(y + 1) % 3])
    second = np.where(rng.random(300)[:, None] < 0.7, np.eye(3)[y], np.eye(3)[(y + 2) % 3])
    soft = [0.6 * p + 0.4 / 3 for p in (first, second)]
    found = ensemble.choose_weight(y, *soft)
    assert 0.2 < found["weight"] < 0.8 and found["resamples"] == ensemble.RESAMPLES
    assert found == ensemble.choose_weight(y, *soft)  # seeded


def _dataset(images, labels):
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)


def test_the_head_ships_alone_where_the_fine_tuned_model_is_confidently_wrong():
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (60, 4, 6, 3)).astype("float32")
    head = _model(3, 2)
    labels = logits_to_proba(head.predict(images, verbose=0), 3).argmax(1)  # the head is right
    shipped, facts = ensemble.combine(_confidently_wrong(labels, images), head,
                                      _dataset(images, labels), labels, 3)
    assert facts["shipped"] == "warm_start" and shipped is head and facts["weight"] == 0.0
    summary = ensemble.combined_summary(facts, epoch=4)
    assert summary["kept"] == "warm_start" and summary["kept_epoch"] == 0
    assert "gets no weight in any bootstrap resample" in summary["kept_reason"]


def _confidently_wrong(labels, images):
    """A model that gives each of `images` (by its first pixel) a wrong class, confidently."""
    table = {float(image[0, 0, 0]): (label + 1) % 3 for image, label in zip(images, labels)}

    class Wrong(keras.layers.Layer):
        def call(self, x):
            firsts = x[:, 0, 0, 0]
            keys = tf.constant(list(table), tf.float32)
            values = tf.constant(list(table.values()), tf.int32)
            index = tf.argmin(tf.abs(firsts[:, None] - keys[None, :]), axis=1)
            return 10.0 * tf.one_hot(tf.gather(values, index), 3)

    inputs = keras.Input((4, 6, 3))
    return keras.Model(inputs, Wrong()(inputs), name="finetune")


def test_a_clearly_better_fine_tune_ships_alone():
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 255, (40, 4, 6, 3)).astype("float32")
    tuned, head = _model(3, 4), _model(3, 5)
    labels = logits_to_proba(tuned.predict(images, verbose=0), 3).argmax(1)
    shipped, facts = ensemble.combine(tuned, head, _dataset(images, labels), labels, 3)
    assert facts["shipped"] == "finetuned" and shipped is tuned and facts["weight"] == 1.0
    summary = ensemble.combined_summary(facts, epoch=6, ema=True)
    assert summary["kept"] == "finetuned" and summary["kept_model"] == "fine-tune epoch 6"
    assert "gives it all the weight" in summary["kept_reason"]


def test_two_comparable_members_ship_as_an_ensemble_and_say_so():
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 255, (60, 4, 6, 3)).astype("float32")
    tuned, head = _model(3, 4), _model(3, 5)
    both = sum(logits_to_proba(m.predict(images, verbose=0), 3) for m in (tuned, head))
    labels = both.argmax(1)  # what the two agree on when averaged
    shipped, facts = ensemble.combine(tuned, head, _dataset(images, labels), labels, 3)
    assert facts["shipped"] == "ensemble" and ensemble.is_ensemble(shipped)
    assert 0 < facts["weight"] < 1 and facts["images"] == 60
    assert facts["accuracy"]["ensemble"] >= max(facts["accuracy"]["finetuned"],
                                                facts["accuracy"]["head"])
    summary = ensemble.combined_summary(facts, epoch=6, ema=True, flip_tta=True)
    assert summary["kept"] == "ensemble" and summary["kept_epoch"] == 6
    assert summary["kept_model"] == (f"the ensemble of fine-tune epoch 6 and the head (weights "
                                     f"{facts['weight']:.2f} and {1 - facts['weight']:.2f}), "
                                     "averaged over each image and its mirror")
    assert "of the 60 validation images" in summary["kept_reason"]
