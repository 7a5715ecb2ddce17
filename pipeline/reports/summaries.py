"""Mergeable evaluation summaries: a report's figures from shards, in memory that does not grow.

A shard step turns its labels and probabilities into a JSON-ready summary (`shard_summary`); the
driver adds them up (`merge_summaries`) and computes `pipeline.reports.compute_metrics`' figures
from the sum (`summary_metrics`). Counts, accuracy, precision/recall/F1, confusion, baseline,
top-5, thresholds and ECE equal it up to float rounding; ROC-AUC and average precision come from
histograms of the scores (`roc_pr_curves`), typically within 0.001 of the exact figures.

Scores are binned by their logit, clipped to [-LOGIT_RANGE, LOGIT_RANGE], in SCORE_BINS uniform
bins (0.016 nats wide): saturated probabilities (0.999 against 0.99999) stay apart; only those
closer to 0 or 1 than 1e-12 share the end bins. A merged summary holds at most
2 * SCORE_BINS histogram entries per class, whatever the number of images.
"""
import collections
import math

import numpy as np

from pipeline.reports.averages import class_averages
from pipeline.reports.metrics import most_confused


__all__ = ["SCORE_BINS", "LOGIT_RANGE", "THRESHOLDS", "CALIBRATION_BINS", "shard_summary",
           "merge_summaries", "summary_metrics", "reliability_rows", "roc_pr_curves"]

SCORE_BINS = 5000
LOGIT_RANGE = 40.0
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
CALIBRATION_BINS = 10
_TOP_K = 5
# A shard's confidence sums are rounded to multiples of this, so that adding them up is exact
# (below 2**21 per bin) and merging is associative: an error of at most 2**-33 per shard.
_QUANTUM = 2.0 ** -32


def _score_bins(p):
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    z = np.clip(np.log(p) - np.log1p(-p), -LOGIT_RANGE, LOGIT_RANGE)
    which = np.floor((z + LOGIT_RANGE) / (2 * LOGIT_RANGE) * SCORE_BINS).astype(np.int64)
    return np.clip(which, 0, SCORE_BINS - 1)


def _sparse(bins):
    counts = np.bincount(bins, minlength=SCORE_BINS)
    return {str(i): int(counts[i]) for i in np.flatnonzero(counts)}


def _scored_classes(num_classes):
    return [1] if num_classes == 2 else list(range(num_classes))


def shard_summary(y_true, proba):
    """The summary of one shard's predictions.

    Args:
        y_true: int labels (n,) in 0..C-1.
        proba: probabilities (n, C); `np.empty((0, C))` for an empty shard.

    Returns:
        A JSON-ready dict: `num_classes`, `count`, `confusion` (true x predicted), `top5_correct`,
        `calibration` (`count`, `confidence_sum`, `correct` per bin of the top probability),
        `scores` (per class `"<c>"`, only `"1"` for two classes: sparse histograms `pos` and `neg`,
        `{"<bin>": count}`, of `proba[:, c]`) and for two classes `thresholds` (`pos`, `neg`:
        rows of each true class with `proba[:, 1] >= t`).

    Raises:
        ValueError: for shapes that do not match or labels out of range.
    """
    y_true, proba = np.asarray(y_true, np.int64).reshape(-1), np.asarray(proba, np.float64)
    if proba.ndim != 2 or len(proba) != len(y_true):
        raise ValueError(f"proba must be (n, C) with n = {len(y_true)}, got {proba.shape}")
    n, num_classes = proba.shape
    if n and (y_true.min() < 0 or y_true.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    y_pred = np.argmax(proba, axis=1)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    # The tie rule of scikit-learn's top_k_accuracy_score: a stable ascending sort, reversed.
    top = np.argsort(proba, axis=1, kind="mergesort")[:, ::-1][:, :_TOP_K]
    confidence = proba.max(axis=1, initial=0.0)
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)  # binned as figures.reliability_bins
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, CALIBRATION_BINS - 1)
    sums = [round(math.fsum(confidence[which == b]) / _QUANTUM) * _QUANTUM
            for b in range(CALIBRATION_BINS)]
    correct = np.bincount(which[y_pred == y_true], minlength=CALIBRATION_BINS)
    calibration = {"count": np.bincount(which, minlength=CALIBRATION_BINS).tolist(),
                   "confidence_sum": sums, "correct": correct.tolist()}
    scores = {}
    for c in _scored_classes(num_classes):
        bins, positive = _score_bins(proba[:, c]), y_true == c
        scores[str(c)] = {"pos": _sparse(bins[positive]), "neg": _sparse(bins[~positive])}
    summary = {"num_classes": int(num_classes), "count": int(n), "confusion": confusion.tolist(),
               "top5_correct": int((top == y_true[:, None]).any(axis=1).sum()),
               "calibration": calibration, "scores": scores}
    if num_classes == 2:
        summary["thresholds"] = {
            side: [int((proba[y_true == label, 1] >= t).sum()) for t in THRESHOLDS]
            for side, label in (("pos", 1), ("neg", 0))}
    return summary


def _add_histograms(histograms):
    total = collections.Counter()
    for histogram in histograms:
        total.update(histogram)  # in place: linear in the entries, however many summaries
    return {key: total[key] for key in sorted(total, key=int) if total[key]}


def _add_lists(lists):
    return np.sum([np.asarray(values, np.int64) for values in lists], axis=0).tolist()


def merge_summaries(summaries):
    """The sum of summaries of one number of classes: the same dict in any order or grouping.

    Counts add exactly; confidence sums, multiples of 2**-32, add exactly too (`math.fsum`).

    Args:
        summaries: an iterable of `shard_summary` (or merged) dicts.

    Raises:
        ValueError: when `summaries` is empty or their numbers of classes differ.
    """
    summaries = list(summaries)
    if not summaries:
        raise ValueError("merge_summaries needs at least one summary")
    num_classes = summaries[0]["num_classes"]
    if any(s["num_classes"] != num_classes for s in summaries):
        raise ValueError("summaries of different numbers of classes cannot be merged")
    calibrations = [s["calibration"] for s in summaries]
    merged = {
        "num_classes": num_classes, "count": sum(s["count"] for s in summaries),
        "confusion": _add_lists(s["confusion"] for s in summaries),
        "top5_correct": sum(s["top5_correct"] for s in summaries),
        "calibration": {"count": _add_lists(c["count"] for c in calibrations),
                        "confidence_sum": [math.fsum(sums) for sums in
                                           zip(*(c["confidence_sum"] for c in calibrations))],
                        "correct": _add_lists(c["correct"] for c in calibrations)},
        "scores": {str(c): {side: _add_histograms(s["scores"][str(c)][side] for s in summaries)
                            for side in ("pos", "neg")} for c in _scored_classes(num_classes)}}
    if num_classes == 2:
        merged["thresholds"] = {side: _add_lists(s["thresholds"][side] for s in summaries)
                                for side in ("pos", "neg")}
    return merged


def reliability_rows(summary):
    """`(rows, ece)` exactly as `pipeline.reports.figures.reliability_bins` gives them.

    Returns:
        Rows of (low, high, count, mean confidence, accuracy) for the non-empty bins, and the ECE.
    """
    calibration, n = summary["calibration"], summary["count"]
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    rows, ece = [], 0.0
    for b, (count, total, correct) in enumerate(zip(
            calibration["count"], calibration["confidence_sum"], calibration["correct"])):
        if count:
            rows.append((float(edges[b]), float(edges[b + 1]), int(count), total / count,
                         correct / count))
            ece += count / n * abs(rows[-1][4] - rows[-1][3])
    return rows, float(ece)


def _digamma(x):
    shift = sum(1.0 / (x + k) for k in range(6))
    x = x + 6.0
    inv2 = 1.0 / (x * x)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 / 240)))
    return np.log(x) - 0.5 / x - series - shift


def _average_precision(pos, neg):
    # Within a bin of a positives and b negatives, after T and F above it, the j-th positive is
    # credited the precision at its expected place in a random order (j * b / (a + 1) negatives
    # before it): the sum of (T + j) / (T + F + c j), c = 1 + b / (a + 1), has a closed form.
    keep = pos > 0
    tp_before, fp_before = (np.cumsum(pos) - pos)[keep], (np.cumsum(neg) - neg)[keep]
    a, b = pos[keep].astype(np.float64), neg[keep].astype(np.float64)
    c = 1.0 + b / (a + 1.0)
    d = (tp_before + fp_before) / c
    credited = (a + (tp_before - d) * (_digamma(d + a + 1.0) - _digamma(d + 1.0))) / c
    return float(credited.sum() / a.sum())


def roc_pr_curves(summary, positive=1):
    """ROC and precision-recall curves of class `positive` (the only one, 1, for two classes).

    The points are the occupied bins from the top, after (fpr = tpr = recall = 0, precision 1).
    ROC-AUC is the trapezoid rule over them (pairs within one bin count half). Average precision
    is scikit-learn's sum of (R_k - R_{k-1}) * P_k, each positive of a bin a threshold at its
    expected place in a random order within the bin: crediting all the bin's final precision
    would bias it low, by up to about 0.002.

    Returns:
        `{"fpr", "tpr", "precision", "recall", "roc_auc", "average_precision"}`; `roc_auc` is
        None without positives or negatives (their rates are 0), `average_precision` without
        positives.

    Raises:
        ValueError: when the summary holds no histograms of `positive`.
    """
    if str(positive) not in summary["scores"]:
        raise ValueError(f"no score histograms of class {positive} in the summary")
    counts = {side: np.zeros(SCORE_BINS, np.int64) for side in ("pos", "neg")}
    for side, histogram in summary["scores"][str(positive)].items():
        counts[side][[int(key) for key in histogram]] = list(histogram.values())
    occupied = np.flatnonzero(counts["pos"] + counts["neg"])[::-1]
    pos, neg = counts["pos"][occupied], counts["neg"][occupied]
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    num_pos, num_neg = int(pos.sum()), int(neg.sum())
    fpr = np.concatenate([[0.0], fp / max(num_neg, 1)])
    tpr = np.concatenate([[0.0], tp / max(num_pos, 1)])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1)])
    roc_auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "precision": precision.tolist(),
            "recall": tpr.tolist(), "roc_auc": roc_auc if num_pos and num_neg else None,
            "average_precision": _average_precision(pos, neg) if num_pos else None}


def _ratio(numerator, denominator):
    return np.where(denominator > 0, numerator / np.maximum(denominator, 1), 0.0)


def summary_metrics(summary, class_names):
    """The figures of `pipeline.reports.compute_metrics`, from a (merged) summary.

    Returns:
        A JSON-ready dict with the keys and meanings of `compute_metrics` (ratios of an empty
        summary are 0), plus `average_precision` (of class 1) for two classes and `score_bins`.
        The macro averages are over the classes present in the true labels
        (`pipeline.reports.averages`), named in `classes_present` and `classes_absent`.

    Raises:
        ValueError: when the number of class names is not the summary's.
    """
    num_classes, n = summary["num_classes"], summary["count"]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    confusion = np.asarray(summary["confusion"], np.int64).reshape(num_classes, num_classes)
    tp, support, predicted = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * tp, support + predicted)
    present = np.flatnonzero(support)
    if len(present) < 2:
        roc_auc = None
    elif num_classes == 2:
        roc_auc = roc_pr_curves(summary, 1)["roc_auc"]
    else:
        roc_auc = float(np.mean([roc_pr_curves(summary, c)["roc_auc"] for c in present]))
    result = {
        "num_examples": int(n), "accuracy": float(tp.sum() / max(n, 1)),
        **class_averages(precision, recall, f1, support, class_names),
        "majority_baseline": float(support.max() / max(n, 1)),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(class_names)},
        "confusion_matrix": confusion.tolist(),
        "most_confused": most_confused(confusion, class_names),
        "roc_auc": roc_auc, "ece": reliability_rows(summary)[1]}
    if num_classes >= 10:
        result["top5_accuracy"] = float(summary["top5_correct"] / max(n, 1))
    if num_classes == 2:
        pos, neg = summary["thresholds"]["pos"], summary["thresholds"]["neg"]
        result["thresholds"] = [
            {"threshold": t, "predicted_positive": int(p + q),
             "precision": p / (p + q) if p + q else 0.0, "recall": float(_ratio(p, support[1]))}
            for t, p, q in zip(THRESHOLDS, pos, neg)]
        result["average_precision"] = roc_pr_curves(summary, 1)["average_precision"]
    result["score_bins"] = SCORE_BINS
    return result
