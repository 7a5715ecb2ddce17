"""`train_dense`: the dense head's epoch count chosen out of fold on the training images."""
import numpy as np
import pytest

from pipeline.features.cache import FeatureSplit
from pipeline.training.heads import HeadConfig, train_head

CONFIG = HeadConfig(epochs=80, patience=4, batch_size=64, learning_rate=1e-2, ensemble=2)


def _split(x, y, copies=None, prefix="img"):
    ids = np.array([f"{prefix}{i // (1 if copies is None else 2)}" for i in range(len(y))])
    return FeatureSplit(ids, x.astype(np.float32), y.astype(np.int64),
                        np.zeros(len(y), np.int64) if copies is None else copies, ids)


def _data(n, seed, dim=10):
    """Two overlapping classes: a head needs a few epochs to get the most out of them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 1, (n, dim))
    x[:, 0] += np.where(y == 1, 1.5, -1.5)
    return x, y


def _weights(head):
    return head.model.get_layer("head_logits").get_weights()


def test_the_epoch_count_follows_the_folds_not_a_misleading_validation_split():
    (x, y), (vx, vy) = _data(300, 0), _data(120, 1)
    train = _split(x, y)
    honest, misleading = _split(vx, vy, prefix="v"), _split(vx, 1 - vy, prefix="v")
    heads = [train_head(train, val, num_classes=2, config=CONFIG)
             for val in (honest, misleading)]
    for head in heads:
        assert head.selection["rule"] == "out_of_fold" and head.selection["folds"] == 5
        assert head.selection["images"] == 300
        assert len(head.history["loss"]) == head.selection["epochs"]
        assert len(head.selection["fold_epochs"]) == 5
        assert head.selection["out_of_fold_accuracy"] > 0.8
    assert heads[0].selection == heads[1].selection  # validation never steered the head
    for ours, theirs in zip(_weights(heads[0]), _weights(heads[1])):
        np.testing.assert_array_equal(ours, theirs)
    # what the old rule does with the misleading split: stops at once
    stopped = train_head(train, misleading, num_classes=2,
                         config=HeadConfig(**{**CONFIG.__dict__, "epoch_folds": 0}))
    assert stopped.selection["rule"] == "validation"
    assert stopped.selection["epochs"] < heads[0].selection["epochs"]


def test_augmented_copies_stay_in_their_images_fold():
    (x, y), (vx, vy) = _data(120, 2), _data(40, 3)
    copies = np.tile([0, 1], 60)
    train = _split(x, y[np.arange(120) // 2 * 2], copies=copies)  # both copies share a label
    head = train_head(train, _split(vx, vy, prefix="v"), num_classes=2, config=CONFIG)
    assert head.selection["images"] == 60  # scored on clean copies, one per image


def test_too_few_images_per_class_for_two_folds_stop_on_validation():
    x, y = np.array([[3.0, 0.0], [-3.0, 0.0], [2.5, 0.1]]), np.array([1, 0, 1])
    head = train_head(_split(x, y), _split(x, y, prefix="v"), num_classes=2, config=CONFIG)
    assert head.selection["rule"] == "validation" and head.selection["images"] == 3


def test_one_fold_is_refused():
    with pytest.raises(ValueError, match="epoch_folds"):
        HeadConfig(epoch_folds=1)
