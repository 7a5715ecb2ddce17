"""Bootstrap intervals cover at their level; a paired comparison tells a real change from none."""
import numpy as np
from scipy import stats

from pipeline.reports.intervals import mcnemar_p, metric_intervals, paired_comparison


def test_the_accuracy_interval_covers_the_true_rate_at_about_its_level():
    rng, rate, covered = np.random.default_rng(7), 0.7, 0
    for _ in range(200):
        right = int(rng.binomial(100, rate))
        confusion = [[right, 0], [100 - right, 0]]  # every image of class 0
        low, high = metric_intervals(confusion, resamples=400, seed=1)["accuracy"]
        covered += low <= rate <= high
    assert 0.9 <= covered / 200 <= 0.99


def test_intervals_are_seeded_and_cover_the_point_figures():
    confusion = np.array([[40, 5, 5], [3, 30, 7], [2, 8, 50]])
    first = metric_intervals(confusion, top5_correct=140)
    assert first == metric_intervals(confusion, top5_correct=140)
    accuracy = np.trace(confusion) / confusion.sum()
    assert first["accuracy"][0] < accuracy < first["accuracy"][1]
    assert len(first["recall"]) == 3 and first["top5_accuracy"][1] <= 1.0
    assert metric_intervals(np.zeros((2, 2))) is None


def test_a_clearly_better_candidate_is_told_apart_and_a_copy_is_not():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 600)
    good = np.where(rng.random(600) < 0.9, y, (y + 1) % 4)
    poor = np.where(rng.random(600) < 0.6, y, (y + 1) % 4)
    better = paired_comparison(y, good, poor, 4)["metrics"]
    assert better["accuracy"]["low"] > 0 and better["macro_f1"]["low"] > 0
    same = paired_comparison(y, poor, poor, 4)
    assert same["metrics"]["accuracy"]["low"] <= 0 <= same["metrics"]["accuracy"]["high"]
    assert same["fixed"] == same["broken"] == 0 and same["mcnemar_p"] == 1.0


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_pairs():
    candidate = np.array([True] * 178 + [False] * 136 + [True] * 500)
    baseline = np.array([False] * 178 + [True] * 136 + [True] * 500)
    assert mcnemar_p(candidate, baseline) == stats.binomtest(178, 314, 0.5).pvalue
    assert 0.01 < mcnemar_p(candidate, baseline) < 0.03  # the food set's 178 against 136
