"""Macro and weighted averages of per-class figures, over the classes present in the true labels.

A class with no true image has no recall, and its F1 is 0 by convention: averaging it in would
make a 5-class model scored on a folder of two of its classes look bad at the three it was never
shown (accuracy 0.90, macro-F1 0.37). The averages are therefore taken over the classes present,
as scikit-learn's `f1_score(y, p, labels=present, average="macro")` does, and the classes left
out are named, for the report to say so.

Example:
    >>> averages = class_averages([1.0, 0.5, 0.0], [1.0, 0.75, 0.0], [1.0, 0.5, 0.0],
    ...                           [10, 5, 0], ["cat", "dog", "owl"])
    >>> averages["macro_f1"], averages["classes_absent"]
    (0.75, ['owl'])
"""
import numpy as np

__all__ = ["class_averages"]


def class_averages(precision, recall, f1, support, class_names):
    """The macro and weighted averages of per-class figures, over the classes with support.

    Args:
        precision, recall, f1: per-class figures, one per class.
        support: true images per class.
        class_names: the class names, in the same order.

    Returns:
        A dict: `macro_f1`, `macro_precision`, `macro_recall` (means over the classes present;
        0.0 when none is), `weighted_f1` (weighted by support), `classes_present` and
        `classes_absent` (names, in class order).
    """
    support = np.asarray(support)
    present = support > 0

    def mean(values):
        return float(np.mean(np.asarray(values, np.float64)[present])) if present.any() else 0.0

    return {"macro_f1": mean(f1), "macro_precision": mean(precision), "macro_recall": mean(recall),
            "weighted_f1": float(np.average(f1, weights=support)) if present.any() else 0.0,
            "classes_present": [n for n, p in zip(class_names, present) if p],
            "classes_absent": [n for n, p in zip(class_names, present) if not p]}
