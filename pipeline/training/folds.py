"""Stratified folds over images (not records): every augmented copy of an image stays in its
image's fold. Used by k-fold evaluation (`pipeline.training.kfold`) and by the dense head's choice
of its epoch count (`pipeline.training.dense_head`). No TensorFlow here.
"""
import numpy as np

from pipeline.validation import check_scalar

__all__ = ["assign_folds", "smallest_class"]


def assign_folds(ids, labels, copies, folds, *, seed):
    """The fold (0..folds-1) of every row: stratified over images, deterministic by seed.

    Args:
        ids: image id per row (copies of one image share it).
        labels: label per row.
        copies: copy index per row (0 = clean).
        folds: K.
        seed: the shuffle seed.

    Raises:
        ValueError: K below 2, or a class with fewer images than K.
    """
    from sklearn.model_selection import StratifiedKFold

    check_scalar(folds, "folds", int, min_val=2)
    clean = np.asarray(copies) == 0
    order = np.argsort(np.asarray(ids)[clean], kind="stable")
    image_ids = np.asarray(ids)[clean][order]
    image_labels = np.asarray(labels)[clean][order]
    smallest = smallest_class(image_labels)
    if smallest < folds:
        raise ValueError(f"folds: expected at most {smallest} (images in the smallest class); "
                         f"got {folds}")
    fold_of = {}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(image_ids, image_labels)):
        fold_of.update((i, fold) for i in image_ids[test])
    return np.array([fold_of[i] for i in ids], np.int64)


def smallest_class(labels):
    """The number of images of the smallest class present in `labels` (0 for none)."""
    return int(np.unique(labels, return_counts=True)[1].min()) if len(labels) else 0
