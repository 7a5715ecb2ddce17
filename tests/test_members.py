"""`fit_members`: the ensemble's dense heads trained together, each exactly as alone."""
import dataclasses

import numpy as np

from pipeline.training.heads import HeadConfig
from pipeline.training.members import fit_members

CONFIG = HeadConfig(epochs=40, patience=3, batch_size=32, learning_rate=1e-2, dropout=0.3)


def _noisy(n, seed, dim=8):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 1, (n, dim)).astype(np.float32)
    x[:, 0] += np.where(y == 1, 0.8, -0.8)
    return x, y


def test_each_member_trained_beside_others_is_the_member_trained_alone():
    (x, y), (vx, vy) = _noisy(200, 1), _noisy(60, 2)
    (kernels, biases), history, best_epochs = fit_members(x, y, vx, vy, seeds=[7, 8, 9],
                                                          num_classes=2, config=CONFIG)
    assert kernels.shape == (3, 8, 1) and biases.shape == (3, 1)
    for m, seed in enumerate([7, 8, 9]):
        (alone_k, alone_b), alone_history, alone_best = fit_members(
            x, y, vx, vy, seeds=[seed], num_classes=2, config=CONFIG)
        assert best_epochs[m] == alone_best[0]
        np.testing.assert_allclose(kernels[m], alone_k[0], atol=1e-6)
        np.testing.assert_allclose(biases[m], alone_b[0], atol=1e-6)
        if m == 0:
            assert history == alone_history  # the first member's epochs only
    assert not np.allclose(kernels[0], kernels[1])  # seeds of their own


def test_a_multiclass_member_gets_one_logit_per_class():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 90)
    x = (np.eye(3)[y] * 3 + rng.normal(0, 1, (90, 3))).astype(np.float32)
    (kernels, biases), history, _ = fit_members(
        x, y, x, y, seeds=[1, 2], num_classes=3,
        config=dataclasses.replace(CONFIG, mixup=0.2, label_smoothing=0.1))
    assert kernels.shape == (2, 3, 3) and biases.shape == (2, 3)
    assert history["val_accuracy"][history["best_epoch"] - 1] > 0.8
