"""How sure a figure is: bootstrap intervals of a report's metrics, a paired comparison of two
models on the same images, and McNemar's exact test.

Resampling images is resampling the cells they fall in: a report's intervals come from its
confusion matrix alone (so they scale to any number of images, summed over shards), and a paired
comparison from the counts of each `(true, candidate's, baseline's)` combination. Every interval
is a seeded percentile bootstrap (`RESAMPLES` resamples, 95 %): the same inputs give the same
interval.

Example:
    >>> intervals = metric_intervals(report["confusion_matrix"], top5_correct=None)
    >>> intervals["accuracy"]
    [0.801, 0.823]
"""
import numpy as np
from scipy import sparse, stats

__all__ = ["RESAMPLES", "LEVEL", "confusion_figures", "metric_intervals", "paired_comparison",
           "mcnemar_p"]

RESAMPLES = 1000
LEVEL = 0.95
#: Resamples drawn at once (bounds memory for many classes).
_CHUNK = 100


def _ratio(numerator, denominator):
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=np.float64),
                     where=denominator > 0)


def _percentiles(values, level):
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail], axis=0)
    return low, high


def _resampled_counts(counts, resamples, seed):
    """Multinomial resamples of `counts` (one row per resample), in chunks."""
    counts = np.asarray(counts, np.int64)
    n, rng = int(counts.sum()), np.random.default_rng(seed)
    p = counts / max(n, 1)
    for start in range(0, resamples, _CHUNK):
        yield rng.multinomial(n, p, size=min(_CHUNK, resamples - start))


def confusion_figures(confusions, present=None):
    """Accuracy, macro-F1 and per-class recall of confusion matrices `(R, k, k)`.

    Args:
        confusions: the matrices (true x predicted).
        present: the classes macro-F1 averages over (a mask of k), as `pipeline.reports.averages`
            does: those present in the data resampled, so that a resample missing a rare class
            scores it 0. Defaults to the classes with a true image in any of the matrices.
    """
    tp = np.diagonal(confusions, axis1=1, axis2=2)
    support, predicted = confusions.sum(axis=2), confusions.sum(axis=1)
    n = support.sum(axis=1)
    f1 = _ratio(2 * tp, support + predicted)
    present = support.sum(axis=0) > 0 if present is None else np.asarray(present, bool)
    macro_f1 = f1[:, present].mean(axis=1) if present.any() else np.zeros(len(f1))
    return {"accuracy": _ratio(tp.sum(axis=1), n), "macro_f1": macro_f1,
            "recall": _ratio(tp, support)}


def metric_intervals(confusion, *, top5_correct=None, resamples=RESAMPLES, level=LEVEL, seed=0):
    """95 % bootstrap intervals of accuracy, macro-F1, per-class recall and top-5 accuracy.

    Args:
        confusion: the `k x k` confusion matrix (true x predicted).
        top5_correct: images whose true class is in the top 5, or None (no top-5 interval).
        resamples: bootstrap resamples. Defaults to `RESAMPLES`.
        level: the interval's level. Defaults to `0.95`.
        seed: the resampling seed. Defaults to `0`.

    Returns:
        `{"accuracy": [low, high], "macro_f1": [...], "recall": [[low, high] per class],
        "top5_accuracy": [...] (with top5_correct)}`; an empty matrix gives None.
    """
    confusion = np.asarray(confusion, np.int64)
    k, n = confusion.shape[0], int(confusion.sum())
    if n == 0:
        return None
    parts = {"accuracy": [], "macro_f1": [], "recall": []}
    present = confusion.sum(axis=1) > 0
    for chunk in _resampled_counts(confusion.ravel(), resamples, seed):
        for name, values in confusion_figures(chunk.reshape(-1, k, k), present).items():
            parts[name].append(values)
    result = {}
    for name, values in parts.items():
        low, high = _percentiles(np.concatenate(values), level)
        result[name] = (np.stack([low, high], axis=-1).tolist() if name == "recall"
                        else [float(low), float(high)])
    if top5_correct is not None:
        hits = np.concatenate([c[:, 0] for c in _resampled_counts(
            [top5_correct, n - top5_correct], resamples, seed + 1)]) / n
        result["top5_accuracy"] = [float(v) for v in _percentiles(hits, level)]
    return result


def mcnemar_p(candidate_right, baseline_right):
    """McNemar's exact two-sided p-value on the discordant pairs (1.0 when there are none)."""
    candidate_right, baseline_right = (np.asarray(a, bool) for a in (candidate_right,
                                                                      baseline_right))
    fixed = int((candidate_right & ~baseline_right).sum())
    broken = int((~candidate_right & baseline_right).sum())
    if fixed + broken == 0:
        return 1.0
    return float(stats.binomtest(fixed, fixed + broken, 0.5).pvalue)


def paired_comparison(y_true, candidate, baseline, num_classes, *, candidate_top5=None,
                      baseline_top5=None, resamples=RESAMPLES, level=LEVEL, seed=0):
    """The candidate against the baseline on the same images, each figure with the 95 %
    paired-bootstrap interval of the difference (the same resampled images for both).

    Args:
        y_true, candidate, baseline: true and predicted class indices, one per image.
        num_classes: k.
        candidate_top5, baseline_top5: whether each image's true class is in the model's top
            5, or None (no top-5 figure).
        resamples, level, seed: as for `metric_intervals`.

    Returns:
        `{"metrics": {name: {candidate, baseline, difference, low, high}}` (accuracy, macro_f1,
        top5_accuracy, and `recall[CLASS INDEX]`), `"fixed"`, `"broken"` (images right only for
        the candidate, only for the baseline), `"mcnemar_p"`, `"num_examples"`}.
    """
    columns = [np.asarray(a, np.int64) for a in (y_true, candidate, baseline)]
    has_top5 = candidate_top5 is not None and baseline_top5 is not None
    if has_top5:
        columns += [np.asarray(candidate_top5, np.int64), np.asarray(baseline_top5, np.int64)]
    groups, counts = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)
    present = np.bincount(columns[0], minlength=num_classes) > 0

    def figures(weights):
        """Each model's figures under `weights` (R resamples x groups)."""
        out = {}
        for side, column in (("candidate", 1), ("baseline", 2)):
            cells = sparse.csr_matrix(
                (np.ones(len(groups)), (np.arange(len(groups)),
                                        groups[:, 0] * num_classes + groups[:, column])),
                shape=(len(groups), num_classes * num_classes))
            confusion = np.asarray((cells.T @ weights.T).T)
            found = confusion_figures(confusion.reshape(-1, num_classes, num_classes),
                                      present)
            if has_top5:
                found["top5_accuracy"] = _ratio(weights @ groups[:, column + 2],
                                                weights.sum(axis=1))
            out[side] = found
        return out

    point = figures(counts[None, :].astype(np.float64))
    draws = [figures(chunk.astype(np.float64))
             for chunk in _resampled_counts(counts, resamples, seed)]
    metrics = {}
    for name in point["candidate"]:
        differences = np.concatenate([d["candidate"][name] - d["baseline"][name] for d in draws])
        low, high = _percentiles(differences, level)
        values = {side: point[side][name][0] for side in ("candidate", "baseline")}
        if name == "recall":
            for c in range(num_classes):
                metrics[f"recall[{c}]"] = _entry(values["candidate"][c], values["baseline"][c],
                                                 low[c], high[c])
        else:
            metrics[name] = _entry(values["candidate"], values["baseline"], low, high)
    right_candidate, right_baseline = columns[1] == columns[0], columns[2] == columns[0]
    return {"metrics": metrics, "num_examples": int(len(columns[0])),
            "fixed": int((right_candidate & ~right_baseline).sum()),
            "broken": int((~right_candidate & right_baseline).sum()),
            "mcnemar_p": mcnemar_p(right_candidate, right_baseline)}


def _entry(candidate, baseline, low, high):
    return {"candidate": float(candidate), "baseline": float(baseline),
            "difference": float(candidate - baseline), "low": float(low), "high": float(high)}
