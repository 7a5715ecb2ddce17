"""The figures of an evaluation report, computed from labels and probabilities.

`compute_metrics` gives every number of `report.json` (accuracy, per-class precision, recall, F1
and support, the confusion matrix, ROC-AUC, ECE, ...); `most_confused` ranks the confusion
matrix's off-diagonal pairs and `most_wrong` the mistakes by their wrong prediction's confidence.
Drawing and writing them is `pipeline.reports.report`'s.
"""
import numpy as np
from sklearn import metrics

from pipeline.reports import figures
from pipeline.reports.averages import class_averages

__all__ = ["class_roc_auc", "most_confused", "compute_metrics", "most_wrong"]

_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def class_roc_auc(y_true, proba):
    """ROC-AUC: binary for two classes, else macro one-vs-rest over the classes present.

    With every class present this equals scikit-learn's
    `roc_auc_score(y, proba, multi_class="ovr", average="macro")`; classes absent from `y_true`
    are left out instead of failing. None when fewer than two classes are present.
    """
    y_true = np.asarray(y_true)
    present = np.unique(y_true)
    if len(present) < 2:
        return None
    if proba.shape[1] == 2:
        return float(metrics.roc_auc_score(y_true, proba[:, 1]))
    return float(np.mean([metrics.roc_auc_score(y_true == c, proba[:, c]) for c in present]))


def most_confused(confusion, class_names, *, top_n=20):
    """The off-diagonal (true, predicted) pairs, most frequent first (fastai's `most_confused`)."""
    confusion = np.asarray(confusion)
    off = [(int(confusion[t, p]), t, p) for t in range(len(confusion))
           for p in range(len(confusion)) if t != p and confusion[t, p]]
    off.sort(key=lambda item: (-item[0], item[1], item[2]))
    totals = confusion.sum(axis=1)
    return [{"true": class_names[t], "predicted": class_names[p], "count": count,
             "share_of_true": count / max(int(totals[t]), 1)} for count, t, p in off[:top_n]]


def _threshold_table(y_true, scores):
    rows = []
    for threshold in _THRESHOLDS:
        predicted = scores >= threshold
        rows.append({"threshold": threshold, "predicted_positive": int(predicted.sum()),
                     "precision": float(metrics.precision_score(y_true, predicted,
                                                                zero_division=0)),
                     "recall": float(metrics.recall_score(y_true, predicted, zero_division=0))})
    return rows


def compute_metrics(y_true, proba, class_names):
    """Accuracy, per-class precision/recall/F1/support, averages, confusion matrix, ROC-AUC, ECE.

    Args:
        y_true: int labels (n,).
        proba: probabilities (n, num_classes).
        class_names: the class names.

    Returns:
        A JSON-ready dict. `majority_baseline` is the accuracy of always predicting the most
        frequent true class, the floor every number should be read against. The macro averages
        are over the classes present in `y_true`, named in `classes_present` and
        `classes_absent` (`pipeline.reports.averages`). `roc_auc` is binary
        for two classes and macro one-vs-rest beyond; `top5_accuracy` appears from 10 classes,
        `thresholds` (precision and recall at fixed thresholds) for two; `ece` always.
    """
    y_true, proba = np.asarray(y_true), np.asarray(proba, np.float64)
    y_pred = np.argmax(proba, axis=1)
    labels = list(range(len(class_names)))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    confusion = metrics.confusion_matrix(y_true, y_pred, labels=labels)
    result = {
        "num_examples": int(len(y_true)),
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        **class_averages(precision, recall, f1, support, class_names),
        "majority_baseline": float(np.bincount(y_true, minlength=len(labels)).max()
                                   / max(len(y_true), 1)),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(class_names)},
        "confusion_matrix": confusion.tolist(),
        "most_confused": most_confused(confusion, class_names),
        "roc_auc": class_roc_auc(y_true, proba),
        "ece": figures.reliability_bins(y_true, proba)[1],
    }
    if len(class_names) >= 10:
        result["top5_accuracy"] = float(metrics.top_k_accuracy_score(y_true, proba, k=5,
                                                                     labels=labels))
    if len(class_names) == 2:
        result["thresholds"] = _threshold_table(y_true, proba[:, 1])
    return result


def most_wrong(ids, y_true, proba, class_names, *, paths=None, top_n=50):
    """The misclassified examples, sorted by the confidence of the wrong prediction (highest first).

    Returns:
        A list of dicts with keys rank, id, path, true, predicted, confidence.
    """
    y_pred = np.argmax(proba, axis=1)
    wrong = np.flatnonzero(y_pred != np.asarray(y_true))
    confidence = proba[wrong, y_pred[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][:top_n]
    return [{"rank": rank + 1, "id": str(ids[i]), "path": paths[i] if paths else "",
             "true": class_names[y_true[i]], "predicted": class_names[y_pred[i]],
             "confidence": float(proba[i, y_pred[i]])} for rank, i in enumerate(order)]
