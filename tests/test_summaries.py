import json

import numpy as np
import pytest
from sklearn import metrics

from pipeline.reports.summaries import (
    SCORE_BINS,
    merge_summaries,
    reliability_rows,
    roc_pr_curves,
    shard_summary,
    summary_metrics,
)
from pipeline.reports import class_roc_auc, compute_metrics
from pipeline.reports.figures import reliability_bins

BINNED = {"roc_auc", "average_precision"}


def _informative(num_classes, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    proba = rng.dirichlet(np.ones(num_classes), n)
    proba[np.arange(n), y] += rng.uniform(0.0, 1.0, n)
    return y, proba / proba.sum(axis=1, keepdims=True)


def _saturated(num_classes, n=3000, seed=1):
    """A very sure model: most probabilities above 0.999 or below 0.001, 5% confident mistakes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    logits = rng.normal(0.0, 1.0, (n, num_classes))
    wrong = rng.random(n) < 0.05
    favoured = np.where(wrong, (y + rng.integers(1, num_classes, n)) % num_classes, y)
    logits[np.arange(n), favoured] += rng.normal(10.0, 2.5, n)
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    return y, (proba / proba.sum(axis=1, keepdims=True)).astype(np.float32)  # as a model gives


def _shards(y, proba, seed=2, count=7):
    cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, len(y)), count - 1, False))
    return [shard_summary(ys, ps) for ys, ps in zip(np.split(y, cuts), np.split(proba, cuts))]


def _names(num_classes):
    return [f"class {i}" for i in range(num_classes)]


def _assert_same(actual, expected, path="", tolerance=1e-9):
    if isinstance(expected, dict):
        assert set(actual) == set(expected), path
        for key in expected:
            _assert_same(actual[key], expected[key], f"{path}/{key}", tolerance)
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_same(a, e, f"{path}[{i}]", tolerance)
    elif isinstance(expected, str) or expected is None:
        assert actual == expected, path
    else:
        assert actual == pytest.approx(expected, rel=tolerance, abs=tolerance), path


def _check_against_arrays(y, proba, summary):
    names = _names(proba.shape[1])
    got, want = summary_metrics(summary, names), compute_metrics(y, proba, names)
    extra = {"score_bins"} | ({"average_precision"} if len(names) == 2 else set())
    assert set(got) == set(want) | extra
    assert got["score_bins"] == SCORE_BINS
    _assert_same({k: got[k] for k in want if k not in BINNED},
                 {k: v for k, v in want.items() if k not in BINNED})
    if want["roc_auc"] is None:
        assert got["roc_auc"] is None
    else:
        assert abs(got["roc_auc"] - want["roc_auc"]) < 0.002
    if len(names) == 2:
        exact = metrics.average_precision_score(y == 1, proba[:, 1])
        assert abs(got["average_precision"] - exact) < 0.002
    rows, ece = reliability_rows(summary)
    want_rows, want_ece = reliability_bins(y, np.asarray(proba, np.float64))  # as compute_metrics
    _assert_same(rows, want_rows)
    assert ece == pytest.approx(want_ece, abs=1e-9)
    return got


@pytest.mark.parametrize("num_classes", [2, 3, 12])
def test_merged_shards_give_compute_metrics_figures(num_classes):
    y, proba = _informative(num_classes)
    summary = merge_summaries(_shards(y, proba))
    assert summary["count"] == len(y)
    got = _check_against_arrays(y, proba, summary)
    assert 0.5 < got["roc_auc"] < 1.0
    if num_classes == 12:
        assert "top5_accuracy" in got
    if num_classes == 2:
        assert len(got["thresholds"]) == 9


@pytest.mark.parametrize("num_classes", [2, 5])
def test_saturated_probabilities_keep_roc_and_ap_close(num_classes):
    y, proba = _saturated(num_classes)
    assert np.mean((proba > 0.999) | (proba < 0.001)) > 0.8
    assert np.mean(np.argmax(proba, axis=1) != y) > 0.03
    summary = merge_summaries(_shards(y, proba))
    got = _check_against_arrays(y, proba, summary)
    for c in ([1] if num_classes == 2 else range(num_classes)):
        curves = roc_pr_curves(summary, c)
        assert abs(curves["roc_auc"] - metrics.roc_auc_score(y == c, proba[:, c])) < 0.002
        exact_ap = metrics.average_precision_score(y == c, proba[:, c])
        assert abs(curves["average_precision"] - exact_ap) < 0.002
    assert got["roc_auc"] == pytest.approx(class_roc_auc(y, proba), abs=0.002)


def test_saturated_probabilities_fall_in_different_bins():
    proba = np.array([[0.001, 0.999], [1e-5, 1 - 1e-5]])
    histogram = shard_summary(np.array([1, 0]), proba)["scores"]["1"]
    assert histogram["pos"].keys() != histogram["neg"].keys()


def test_ties_follow_scikit_learn():
    y, proba = _informative(12, n=2000, seed=3)
    proba = np.round(proba, 2)  # many ties, in the top 5 and the argmax
    ordered = np.sort(proba, axis=1)
    assert np.mean(ordered[:, -5] == ordered[:, -6]) > 0.2
    _check_against_arrays(y, proba, merge_summaries(_shards(y, proba)))


def test_scores_in_separate_bins_give_exact_curves():
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    p1 = np.array([0.99, 0.95, 0.9, 0.7, 0.5, 0.3, 0.2, 0.01])
    curves = roc_pr_curves(shard_summary(y, np.stack([1 - p1, p1], axis=1)))
    fpr, tpr, _ = metrics.roc_curve(y, p1, drop_intermediate=False)
    assert curves["fpr"] == pytest.approx(fpr) and curves["tpr"] == pytest.approx(tpr)
    assert curves["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, p1), abs=1e-12)
    exact_ap = metrics.average_precision_score(y, p1)
    assert curves["average_precision"] == pytest.approx(exact_ap, abs=1e-12)
    assert curves["precision"][1:4] == pytest.approx([1.0, 0.5, 2 / 3])
    assert curves["recall"] == curves["tpr"]


def test_merge_order_and_grouping_do_not_matter():
    y, proba = _informative(3, seed=4)
    shards = _shards(y, proba)
    forward = merge_summaries(shards)
    backward = merge_summaries(reversed(shards))
    nested = merge_summaries([merge_summaries(shards[5:]), merge_summaries(shards[:2]),
                              merge_summaries([shards[3], merge_summaries(shards[2:3]),
                                               shards[4]])])
    assert json.dumps(forward, sort_keys=True) == json.dumps(backward, sort_keys=True)
    assert json.dumps(forward, sort_keys=True) == json.dumps(nested, sort_keys=True)


def test_summary_is_json_and_round_trips():
    y, proba = _informative(2, n=500, seed=5)
    summary = merge_summaries(_shards(y, proba))
    again = json.loads(json.dumps(summary))
    assert again == summary
    assert summary_metrics(again, _names(2)) == summary_metrics(summary, _names(2))
    json.dumps(summary_metrics(summary, _names(2)), allow_nan=False)


def test_absent_class_is_left_out_of_roc_auc():
    y, proba = _informative(4, seed=6)
    keep = y != 2
    y, proba = y[keep], proba[keep]
    summary = merge_summaries(_shards(y, proba))
    got = _check_against_arrays(y, proba, summary)
    assert got["per_class"]["class 2"]["support"] == 0
    assert roc_pr_curves(summary, 2)["roc_auc"] is None


def test_single_class_present_has_no_roc_auc():
    y, proba = np.zeros(50, int), _informative(3, n=50)[1]
    got = _check_against_arrays(y, proba, shard_summary(y, proba))
    assert got["roc_auc"] is None


def test_empty_shard_merges_as_nothing():
    y, proba = _informative(3, n=400, seed=7)
    empty = shard_summary(np.zeros(0, int), np.zeros((0, 3)))
    assert empty["count"] == 0 and empty["top5_correct"] == 0
    assert not any(empty["calibration"]["count"]) and not any(empty["calibration"]["correct"])
    assert all(not side for hist in empty["scores"].values() for side in hist.values())
    shards = _shards(y, proba)
    assert merge_summaries([empty, *shards, empty]) == merge_summaries(shards)
    got = summary_metrics(empty, _names(3))
    assert got["num_examples"] == 0 and got["accuracy"] == 0.0 and got["roc_auc"] is None
    json.dumps(got, allow_nan=False)


def test_merge_rejects_nothing_and_mixed_classes():
    with pytest.raises(ValueError):
        merge_summaries([])
    two = shard_summary(np.array([0, 1]), np.array([[0.7, 0.3], [0.2, 0.8]]))
    three = shard_summary(np.array([2]), np.array([[0.1, 0.2, 0.7]]))
    with pytest.raises(ValueError):
        merge_summaries([two, three])
    with pytest.raises(ValueError):
        shard_summary(np.array([3]), np.array([[0.1, 0.2, 0.7]]))


def test_macro_averages_leave_out_the_classes_with_no_image():
    # A 5-class model on a folder of two of its classes, mostly right.
    y = np.array([0] * 10 + [3] * 10)
    predicted = y.copy()
    predicted[[0, 12]] = [1, 4]
    proba = np.full((20, 5), 0.05)
    proba[np.arange(20), predicted] = 0.8
    got = summary_metrics(shard_summary(y, proba), _names(5))
    present = [0, 3]
    for name, score in (("macro_f1", metrics.f1_score), ("macro_precision",
                                                         metrics.precision_score),
                        ("macro_recall", metrics.recall_score)):
        want = score(y, predicted, labels=present, average="macro", zero_division=0)
        assert got[name] == pytest.approx(want), name
    assert got["macro_f1"] > 0.85
    assert got["classes_present"] == ["class 0", "class 3"]
    assert got["classes_absent"] == ["class 1", "class 2", "class 4"]
