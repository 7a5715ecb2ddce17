import dataclasses
import warnings

import numpy as np
import pytest

from pipeline.features.cache import FeatureSplit
from pipeline.training.heads import HeadConfig, fraction_subset, load_head, train_head


def _split(x, y, copies=None, prefix="img"):
    ids = np.array([f"{prefix}{i}" for i in range(len(y))])
    return FeatureSplit(ids, x.astype(np.float32), y.astype(np.int64),
                        np.zeros(len(y), np.int64) if copies is None else copies, ids)


def _separable(n, dim=16, seed=0, shuffle_labels=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 1, (n, dim))
    x[:, 0] += np.where(y == 1, 4.0, -4.0)
    if shuffle_labels:
        y = rng.permutation(y)
    return x, y


# Early stopping on validation (`epoch_folds=0`): these tests are about how the members train.
FAST = HeadConfig(epochs=60, patience=5, batch_size=64, learning_rate=1e-2, epoch_folds=0)


@pytest.mark.parametrize("kind", ["dense", "logistic"])
def test_linearly_separable_embeddings_give_accuracy_one(kind):
    (x, y), (vx, vy) = _separable(400, seed=0), _separable(100, seed=1)
    head = train_head(_split(x, y), _split(vx, vy), num_classes=2,
                      config=HeadConfig(head=kind, epochs=60, patience=5, batch_size=64))
    assert np.mean(head.predict_proba(vx).argmax(1) == vy) == 1.0


@pytest.mark.parametrize("kind", ["dense", "logistic"])
def test_shuffled_labels_stay_near_chance(kind):
    (x, y), (vx, vy) = _separable(400, seed=0, shuffle_labels=True), _separable(
        400, seed=1, shuffle_labels=True)
    head = train_head(_split(x, y), _split(vx, vy), num_classes=2,
                      config=HeadConfig(head=kind, epochs=60, patience=5, batch_size=64))
    assert 0.35 < np.mean(head.predict_proba(vx).argmax(1) == vy) < 0.65


def test_multiclass_dense_head_gives_softmax_probabilities():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.normal(0, 1, (300, 8)) + np.eye(3, 8)[y] * 8
    head = train_head(_split(x, y), _split(x, y), num_classes=3, config=FAST)
    proba = head.predict_proba(x)
    assert proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert np.mean(proba.argmax(1) == y) > 0.95


def test_same_data_and_seed_give_the_same_head():
    (x, y), (vx, vy) = _separable(300, seed=2), _separable(100, seed=3)
    first = train_head(_split(x, y), _split(vx, vy), num_classes=2, config=FAST)
    second = train_head(_split(x, y), _split(vx, vy), num_classes=2, config=FAST)
    np.testing.assert_array_equal(first.predict_proba(vx), second.predict_proba(vx))
    assert first.history == second.history


@pytest.mark.parametrize("kind", ["dense", "logistic"])
def test_save_and_load_round_trip(kind, tmp_path):
    (x, y), (vx, vy) = _separable(200, seed=4), _separable(50, seed=5)
    head = train_head(_split(x, y), _split(vx, vy), num_classes=2,
                      config=HeadConfig(head=kind, epochs=5))
    head.save(tmp_path)
    np.testing.assert_allclose(load_head(tmp_path).predict_proba(vx), head.predict_proba(vx),
                               atol=1e-6)


def test_one_class_in_training_is_refused():
    x, _ = _separable(50)
    with pytest.raises(ValueError, match="only class \\[1\\]"):
        train_head(_split(x, np.ones(50)), _split(x, np.ones(50)), num_classes=2)


def test_empty_validation_is_refused():
    x, y = _separable(50)
    with pytest.raises(ValueError, match="validation split is empty.*--val-fraction"):
        train_head(_split(x, y), _split(x[:0], y[:0]), num_classes=2)


def test_missing_head_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no head.json"):
        load_head(tmp_path)


def test_fraction_subset_is_stratified_deterministic_and_keeps_copies_together():
    ids = np.repeat([f"img{i}" for i in range(200)], 3)
    labels = np.repeat(np.r_[np.zeros(150, int), np.ones(50, int)], 3)
    mask = fraction_subset(ids, labels, 0.1, seed=1)
    np.testing.assert_array_equal(mask, fraction_subset(ids, labels, 0.1, seed=1))
    chosen = set(ids[mask])
    assert len(chosen) == 15 + 5
    assert mask.sum() == 3 * len(chosen)
    assert np.bincount(labels[mask]).tolist() == [45, 15]
    assert set(ids[fraction_subset(ids, labels, 0.1, seed=2)]) != chosen
    assert len(set(ids[fraction_subset(ids, labels, 0.001, seed=1)])) == 2


@pytest.mark.parametrize("options", [
    {"weight_decay": 1e-2}, {"label_smoothing": 0.1}, {"mixup": 0.4}, {"standardize": True}])
def test_regularised_dense_heads_still_separate_and_are_reproducible(options):
    (x, y), (vx, vy) = _separable(300, seed=6), _separable(100, seed=7)
    config = HeadConfig(epochs=40, patience=5, batch_size=64, **options)
    first = train_head(_split(x, y), _split(vx, vy), num_classes=2, config=config)
    second = train_head(_split(x, y), _split(vx, vy), num_classes=2, config=config)
    assert np.mean(first.predict_proba(vx).argmax(1) == vy) >= 0.97
    np.testing.assert_array_equal(first.predict_proba(vx), second.predict_proba(vx))


def test_multiclass_mixup_and_smoothing_give_softmax_probabilities():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.normal(0, 1, (300, 8)) + np.eye(3, 8)[y] * 8
    config = HeadConfig(epochs=40, patience=5, batch_size=64, mixup=0.2, label_smoothing=0.1)
    proba = train_head(_split(x, y), _split(x, y), num_classes=3, config=config).predict_proba(x)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert np.mean(proba.argmax(1) == y) > 0.95


def test_standardised_head_takes_raw_embeddings(tmp_path):
    (x, y), (vx, vy) = _separable(300, seed=8), _separable(100, seed=9)
    scale, offset = np.linspace(0.01, 100, 16), np.linspace(-50, 50, 16)
    head = train_head(_split(x * scale + offset, y), _split(vx * scale + offset, vy),
                      num_classes=2, config=HeadConfig(epochs=40, batch_size=64,
                                                       standardize=True))
    assert np.mean(head.predict_proba(vx * scale + offset).argmax(1) == vy) == 1.0
    assert [layer.name for layer in head.model.layers] == ["head_dropout", "head_logits"]
    head.save(tmp_path)
    np.testing.assert_allclose(load_head(tmp_path).predict_proba(vx * scale + offset),
                               head.predict_proba(vx * scale + offset), atol=1e-6)


@pytest.mark.parametrize("field, value, message", [
    ("weight_decay", -1.0, "weight_decay: expected a value >= 0.0"),
    ("label_smoothing", 1.0, "label_smoothing: expected a value >= 0.0 and < 1.0"),
    ("mixup", -0.1, "mixup: expected a value >= 0.0")])
def test_bad_regularisation_is_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        HeadConfig(**{field: value})


def _noisy(n, seed, num_classes=2, dim=8):
    """Overlapping classes (the first one the most frequent): heads stop early, each seed at
    an epoch of its own."""
    rng = np.random.default_rng(seed)
    y = rng.choice(num_classes, n, p=np.r_[0.6, np.full(num_classes - 1,
                                                           0.4 / (num_classes - 1))])
    x = rng.normal(0, 1, (n, dim))
    x[np.arange(n), y] += 1.0
    return x, y


def _logits(head, x):
    return head.model.predict(x.astype(np.float32), verbose=0)


@pytest.mark.parametrize("num_classes, options", [
    (2, {}),
    (3, {"class_weight": True, "mixup": 0.3, "standardize": True, "label_smoothing": 0.1,
         "weight_decay": 1e-2})])
def test_ensemble_trained_together_is_the_mean_of_its_members_trained_one_by_one(num_classes,
                                                                                options):
    (x, y), (vx, vy) = _noisy(300, 12, num_classes), _noisy(100, 13, num_classes)
    config = dataclasses.replace(FAST, **options)
    members = [train_head(_split(x, y), _split(vx, vy), num_classes=num_classes,
                          config=dataclasses.replace(config, ensemble=1, seed=config.seed + m))
               for m in range(5)]
    ensemble = train_head(_split(x, y), _split(vx, vy), num_classes=num_classes,
                          config=dataclasses.replace(config, ensemble=5))
    epochs = [len(member.history["loss"]) for member in members]
    assert len(set(epochs)) > 1 and min(epochs) < config.epochs
    np.testing.assert_allclose(_logits(ensemble, vx),
                               np.mean([_logits(member, vx) for member in members], axis=0),
                               atol=1e-5)
    assert ensemble.history == members[0].history


def test_early_stopping_keeps_the_weights_of_the_best_epoch():
    (x, y), (vx, vy) = _noisy(300, 14), _noisy(100, 15)
    config = dataclasses.replace(FAST, ensemble=1)
    stopped = train_head(_split(x, y), _split(vx, vy), num_classes=2, config=config)
    best = stopped.history["best_epoch"]
    assert best + config.patience == len(stopped.history["loss"])
    until_best = train_head(_split(x, y), _split(vx, vy), num_classes=2,
                            config=dataclasses.replace(config, epochs=best))
    np.testing.assert_array_equal(_logits(until_best, vx), _logits(stopped, vx))


def test_saved_dense_head_is_the_one_layer_head_and_loads_without_warnings(tmp_path):
    (x, y), (vx, vy) = _separable(200, seed=16), _separable(50, seed=17)
    train_head(_split(x, y), _split(vx, vy), num_classes=2,
               config=dataclasses.replace(FAST, epochs=3, ensemble=2)).save(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        head = load_head(tmp_path)
    assert [layer.name for layer in head.model.layers] == ["head_dropout", "head_logits"]
    assert head.model.get_layer("head_logits").get_weights()[0].shape == (16, 1)
