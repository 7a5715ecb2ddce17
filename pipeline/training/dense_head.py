"""The dense head on cached embeddings: its epoch count chosen out of fold, then trained on
every training image.

Early stopping on the validation split decides how long a head trains on a few hundred images,
and then the same images judge it. Here the training images decide instead: `train_dense` splits
them into `HeadConfig.epoch_folds` stratified folds over images (`pipeline.training.folds`),
trains the head's members on all folds but one with early stopping on the held-out fold, and
takes the median of every member's best epoch over the folds; the head is then trained on all
the training images for exactly that many epochs. The validation split never steers the head
(it is scored for the curves only), so it stays a fair judge of the head and of the fine-tuned
model's ensemble with it (`pipeline.training.ensemble`). The folds' held-out predictions give an
out-of-fold accuracy on every training image, reported beside the validation figures.
"""
import math

import numpy as np

from pipeline.training.folds import assign_folds, smallest_class
from pipeline.training.members import fit_members

__all__ = ["build_dense_head", "train_dense"]


def build_dense_head(embedding_dim, num_classes, *, dropout=0.2):
    """Dropout + Dense: one logit for two classes, `num_classes` logits otherwise."""
    import keras

    return keras.Sequential([
        keras.Input((embedding_dim,), name="embedding"),
        keras.layers.Dropout(dropout, name="head_dropout"),
        keras.layers.Dense(1 if num_classes == 2 else num_classes, name="head_logits"),
    ], name="head")


def _standardizer(train_x):
    """Mean and standard deviation of the training embeddings.

    Features that are constant (relative to the largest spread) are left unscaled.
    """
    mean, std = train_x.mean(0), train_x.std(0)
    return mean, np.where(std > 1e-6 * std.max(), std, 1.0).astype(np.float32)


def _fold_standardization(model, mean, std):
    """Folds `(x - mean) / std` into the dense layer, so the head takes raw embeddings."""
    dense = model.get_layer("head_logits")
    kernel, bias = dense.get_weights()
    kernel = kernel / std[:, None]
    dense.set_weights([kernel, bias - mean @ kernel])


def _members_proba(kernels, biases, x, num_classes):
    """The probabilities of the members' mean weights (the head they average into) on `x`."""
    from scipy.special import expit, softmax

    logits = (x @ kernels.mean(0) + biases.mean(0)).astype(np.float64)
    if num_classes == 2:
        positive = expit(logits[:, 0])
        return np.stack([1.0 - positive, positive], axis=1)
    return softmax(logits, axis=1)


def _epochs_out_of_fold(x, train, num_classes, config, folds, verbose):
    """The epoch count chosen over `folds` folds of the training images, and what it rests on:
    `{"rule": "out_of_fold", "folds", "images", "epochs", "fold_epochs", "out_of_fold_accuracy",
    "out_of_fold_log_loss"}`."""
    from sklearn.metrics import log_loss

    fold = assign_folds(train.ids, train.labels, train.copies, folds, seed=config.seed)
    clean = train.copies == 0
    seeds = [config.seed + m for m in range(config.ensemble)]
    proba = np.zeros((len(x), num_classes))
    best = []
    for k in range(folds):
        fit, held = fold != k, (fold == k) & clean
        (kernels, biases), _, best_epochs = fit_members(
            x[fit], train.labels[fit], x[held], train.labels[held], seeds=seeds,
            num_classes=num_classes, config=config, verbose=verbose)
        best.append(best_epochs)
        proba[held] = _members_proba(kernels, biases, x[held], num_classes)
    epochs = max(1, math.ceil(np.median(best)))
    labels = train.labels[clean]
    return epochs, {
        "rule": "out_of_fold", "folds": folds, "images": int(clean.sum()), "epochs": epochs,
        "fold_epochs": [int(math.ceil(np.median(b))) for b in best],
        "out_of_fold_accuracy": float(np.mean(proba[clean].argmax(1) == labels)),
        "out_of_fold_log_loss": float(log_loss(labels, proba[clean],
                                               labels=list(range(num_classes))))}


def train_dense(train, val, num_classes, config, verbose=0):
    """The `config.ensemble` dense heads of seeds `seed`, `seed + 1`, ..., trained together,
    as one head holding their mean weights.

    Args:
        train: the training `FeatureSplit` (all copies).
        val: the clean validation `FeatureSplit`.
        num_classes: the class count.
        config: a `pipeline.training.heads.HeadConfig`.
        verbose: a line per epoch when true. Defaults to `0`.

    Returns:
        `(model, history, selection)`: the Keras head, the first member's history, and how its
        epoch count was chosen: out of fold (see the module's docstring), or, with
        `epoch_folds=0` or a class with fewer training images than two folds, by early stopping
        on validation (`{"rule": "validation", "images", "epochs"}`).
    """
    import keras

    from pipeline.training.heads import soft_loss_and_metric

    scaling = _standardizer(train.embeddings) if config.standardize else None
    x, val_x = ((train.embeddings, val.embeddings) if scaling is None else
                ((train.embeddings - scaling[0]) / scaling[1],
                 (val.embeddings - scaling[0]) / scaling[1]))
    folds = min(config.epoch_folds, smallest_class(train.labels[train.copies == 0]))
    epochs, selection = (_epochs_out_of_fold(x, train, num_classes, config, folds, verbose)
                         if folds >= 2 else (None, None))
    (kernels, biases), history, best_epochs = fit_members(
        x, train.labels, val_x, val.labels, seeds=[config.seed + m for m in range(config.ensemble)],
        num_classes=num_classes, config=config, verbose=verbose, epochs=epochs)
    if selection is None:
        selection = {"rule": "validation", "images": int(len(val.labels)),
                     "epochs": int(np.median(best_epochs))}
    model = build_dense_head(train.embeddings.shape[1], num_classes, dropout=config.dropout)
    loss, metric = soft_loss_and_metric(num_classes, config.label_smoothing)
    model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate,
                                                   weight_decay=config.weight_decay),
                  loss=loss, metrics=[metric])
    model.optimizer.build(model.trainable_variables)  # head.keras as before: compiled, built
    model.get_layer("head_logits").set_weights([kernels.mean(0), biases.mean(0)])
    if scaling is not None:
        _fold_standardization(model, *scaling)
    return model, history, selection
