"""Classification heads trained on cached embeddings: no backbone pass at all.

- `dense`: Dropout + Dense, the seeds' head (one logit for two classes, softmax logits for more),
  trained with Adam for an epoch count chosen out of fold on the training images
  (`pipeline.training.dense_head`; the validation split never steers it); by default five such
  heads of consecutive seeds, trained together in one batched step (each with its own
  initialisation, data order and dropout masks, as if trained alone:
  `pipeline.training.members`), their weights averaged into one (the exact ensemble of their
  logits). It is saved as a Keras model so that the fine-tune job can load it into the
  end-to-end model. Options: weight decay, label smoothing, mixup on embeddings,
  standardisation.
- `logistic`: scikit-learn `LogisticRegression` on standardised embeddings, a strong fast baseline.

The same features, config and seed give the same head.
"""
import dataclasses
import hashlib
import json
import math
import os
import pickle
import posixpath

import numpy as np

from pipeline.fields import check_choices, field
from pipeline.training.dense_head import build_dense_head, train_dense
from pipeline.validation import check_scalar

__all__ = ["HEADS", "HeadConfig", "TrainedHead", "train_head", "load_head", "fraction_subset",
           "build_dense_head", "loss_and_metric", "soft_loss_and_metric", "logits_to_proba"]

HEADS = ("dense", "logistic")
_KERAS_FILE, _SKLEARN_FILE, _META_FILE = "head.keras", "head.pkl", "head.json"


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """How a head is trained.

    Attributes:
        head: `"dense"` or `"logistic"`. Defaults to `"dense"`.
        epochs: maximum epochs (dense). Defaults to `200`.
        batch_size: Defaults to `512`.
        learning_rate: Adam's learning rate (dense). Defaults to `1e-2`.
        dropout: dropout before the dense layer. Defaults to `0.2`.
        patience: early-stopping patience on the held-out loss (of each fold while the epoch
            count is chosen, or of validation with `epoch_folds=0`). Defaults to `5`.
        epoch_folds: the dense head's epoch count is the median best epoch over this many
            stratified folds of the training images (`pipeline.training.dense_head`); the head
            then trains on all of them for that many epochs. 0: early stopping on the
            validation split instead (the rule before, which lets a few hundred validation
            images both steer and judge the head). Defaults to `5`.
        class_weight: weight classes by inverse frequency. Defaults to `False`.
        l2: inverse regularisation strength `C` of the logistic head. Defaults to `1.0`.
        weight_decay: decoupled weight decay of Adam (AdamW) for the dense head. Defaults to `0.0`.
        label_smoothing: of the dense head's training targets. Defaults to `0.0`.
        mixup: alpha of the Beta distribution that mixes pairs of training embeddings and their
            targets (mixup on embeddings); 0 turns it off. Defaults to `0.0`.
        standardize: train the dense head on embeddings standardised with the training mean and
            standard deviation; the saved head folds them into its weights, so it still takes
            raw embeddings (and the fine-tune job warm-starts from it unchanged). Defaults to
            `False`.
        ensemble: train this many dense heads (seeds `seed`, `seed + 1`, ...) and average
            their weights; the heads are linear in the embeddings, so the average is exactly the
            ensemble of their logits, saved as one head (its `history` is the first member's).
            The members train together, in one step over a batched kernel, each exactly as it
            would alone (the head of `ensemble=1` and seed `seed + m`). Defaults to `5`:
            measured (bench/head_ablation.py, three seeds, six data set and backbone pairs)
            never worse on average than one head and up to 2 points better on small data
            (flowers at 75 images per class); on GENKI-4K the five train together in about
            3 s (bench/head_speed.py).
        seed: seed of initialisation, shuffling and subsets. Defaults to `123`.

    The defaults converge in seconds on GENKI-4K embeddings (bench/head_vs_seed.py) with the
    validation accuracy of slower settings (1e-3, batch 128, patience 10: 72 epochs, 18 s).
    """

    head: str = field("dense", choices=HEADS, help="kind of head")
    epochs: int = field(200, help="maximum epochs (dense)")
    batch_size: int = field(512, help="training batch size")
    learning_rate: float = field(1e-2, help="Adam's learning rate (dense)")
    dropout: float = field(0.2, help="dropout before the dense layer")
    patience: int = field(5, help="early-stopping patience on the held-out loss")
    epoch_folds: int = field(5, help="choose the dense head's epoch count over this many folds "
                             "of the training images, then train on all of them (0: early "
                             "stopping on the validation split)")
    class_weight: bool = field(False, help="weight classes by inverse frequency (imbalanced "
                               "data)")
    l2: float = field(1.0, help="inverse regularisation C of the logistic head")
    weight_decay: float = field(0.0, help="decoupled weight decay (AdamW) of the dense head")
    label_smoothing: float = field(0.0, help="of the dense head's training targets")
    mixup: float = field(0.0, help="alpha of mixup on embeddings (0: off)")
    standardize: bool = field(False, help="train on standardised embeddings (folded into the "
                              "saved head)")
    ensemble: int = field(5, help="average the weights of this many dense heads of seeds seed, "
                          "seed+1, ... (one head, their logit ensemble)")
    seed: int = field(123, help="seed of initialisation, shuffling and subsets")

    def __post_init__(self):
        check_choices(self)
        check_scalar(self.epochs, "epochs", int, min_val=1)
        check_scalar(self.batch_size, "batch_size", int, min_val=1)
        check_scalar(self.learning_rate, "learning_rate", float, min_val=0.0, include_min=False)
        check_scalar(self.dropout, "dropout", float, min_val=0.0, max_val=1.0, include_max=False)
        check_scalar(self.patience, "patience", int, min_val=1)
        check_scalar(self.epoch_folds, "epoch_folds", int, min_val=0)
        if self.epoch_folds == 1:
            raise ValueError("epoch_folds: expected 0 (no folds) or at least 2; got 1")
        check_scalar(self.l2, "l2", float, min_val=0.0, include_min=False)
        check_scalar(self.weight_decay, "weight_decay", float, min_val=0.0)
        check_scalar(self.label_smoothing, "label_smoothing", float, min_val=0.0, max_val=1.0,
                     include_max=False)
        check_scalar(self.mixup, "mixup", float, min_val=0.0)
        check_scalar(self.ensemble, "ensemble", int, min_val=1)


def fraction_subset(ids, labels, fraction, *, seed):
    """A deterministic stratified subset of images: a boolean mask over rows.

    Per class, images (distinct ids) are ranked by a hash of (seed, id) and the first
    `ceil(fraction * n)` (at least one) are kept; every row (augmented copy) of a kept image is
    kept.
    """
    check_scalar(fraction, "train_fraction", float, min_val=0.0, max_val=1.0, include_min=False)
    keep = set()
    for label in np.unique(labels):
        images = sorted(set(ids[labels == label].tolist()),
                        key=lambda i: hashlib.sha256(f"{seed}\x00{i}".encode()).digest())
        keep.update(images[:max(1, math.ceil(fraction * len(images)))])
    return np.isin(ids, list(keep))


class TrainedHead:
    """A trained head: `predict_proba(embeddings) -> (n, num_classes)` probabilities.

    Attributes:
        kind: `"dense"` or `"logistic"`.
        model: the Keras model (dense) or scikit-learn pipeline (logistic).
        num_classes: number of classes.
        history: per-epoch `loss`, `accuracy`, `val_loss`, `val_accuracy` lists (dense), or {}.
        selection: how the dense head's epoch count was chosen, and on what evidence
            (`pipeline.training.dense_head.train_dense`), or None.
        meta: what `save` writes to `head.json`.
    """

    def __init__(self, kind, model, *, num_classes, history=None, meta=None, selection=None):
        self.kind, self.model, self.num_classes = kind, model, num_classes
        self.history = history or {}
        self.meta = meta or {}
        self.selection = selection

    def predict_proba(self, embeddings):
        embeddings = np.asarray(embeddings, np.float32)
        if self.kind == "logistic":
            return self.model.predict_proba(embeddings)
        return logits_to_proba(self.model.predict(embeddings, verbose=0, batch_size=1024),
                               self.num_classes)

    def save(self, directory):
        """Writes `head.keras` or `head.pkl`, and `head.json`, into `directory`."""
        os.makedirs(directory, exist_ok=True)
        if self.kind == "dense":
            self.model.save(os.path.join(directory, _KERAS_FILE))
        else:
            with open(os.path.join(directory, _SKLEARN_FILE), "wb") as handle:
                pickle.dump(self.model, handle)
        meta = {**self.meta, "kind": self.kind, "num_classes": self.num_classes,
                "history": self.history, "selection": self.selection}
        with open(os.path.join(directory, _META_FILE), "w") as handle:
            json.dump(meta, handle, indent=2, sort_keys=True)


def load_head(directory):
    """Loads a head saved by `TrainedHead.save` (a local or `gs://` folder).

    Raises:
        ValueError: the folder holds no saved head, or a file of its published folder is
            missing or truncated (`pipeline.publish`).
    """
    import tensorflow as tf  # the one file-system layer: local or gs://

    from pipeline.publish import verify_published  # (TensorFlow: not at this module's import)

    meta_path = posixpath.join(directory, _META_FILE)
    if not tf.io.gfile.exists(meta_path):
        raise ValueError(f"head {directory!r}: no {_META_FILE}; train one with "
                         "`python -m jobs.train_head`")
    verify_published(directory, digests=False)
    with tf.io.gfile.GFile(meta_path) as handle:
        meta = json.load(handle)
    if meta["kind"] == "dense":
        import keras

        model = keras.models.load_model(posixpath.join(directory, _KERAS_FILE))
    else:
        with tf.io.gfile.GFile(posixpath.join(directory, _SKLEARN_FILE), "rb") as handle:
            model = pickle.load(handle)
    return TrainedHead(meta["kind"], model, num_classes=meta["num_classes"],
                       history=meta.get("history"), meta=meta, selection=meta.get("selection"))


def logits_to_proba(logits, num_classes):
    """Class probabilities (n, num_classes) from head logits (one logit for two classes)."""
    import tensorflow as tf

    if num_classes == 2:
        positive = tf.sigmoid(np.asarray(logits)[:, 0]).numpy()
        return np.stack([1.0 - positive, positive], axis=1)
    return tf.nn.softmax(logits).numpy()


def loss_and_metric(num_classes):
    """The head's loss (from logits) and its `accuracy` metric, for `num_classes` classes."""
    import keras

    if num_classes == 2:
        return (keras.losses.BinaryCrossentropy(from_logits=True),
                keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0))
    return (keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"))


def soft_loss_and_metric(num_classes, label_smoothing=0.0):
    """A training loss on float targets (mixed or smoothed: (n, 1) for two classes, one-hot
    otherwise) and its `accuracy` metric."""
    import keras

    if num_classes == 2:
        return (keras.losses.BinaryCrossentropy(from_logits=True,
                                                label_smoothing=label_smoothing),
                keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0))
    return (keras.losses.CategoricalCrossentropy(from_logits=True,
                                                 label_smoothing=label_smoothing),
            keras.metrics.CategoricalAccuracy(name="accuracy"))


def _train_logistic(train_x, train_y, config):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(
        C=config.l2, max_iter=5000, random_state=config.seed,
        class_weight="balanced" if config.class_weight else None))
    return model.fit(train_x, train_y)


def train_head(train, val, *, num_classes, config=HeadConfig(), verbose=0):
    """Trains a head on cached embeddings.

    Args:
        train: a `pipeline.features.cache.FeatureSplit` (all copies).
        val: a `FeatureSplit` of clean validation embeddings.
        num_classes: number of classes of the cache.
        config: a `HeadConfig`. Defaults to `HeadConfig()`.
        verbose: Keras progress display (0 silent, 1 progress bar, 2 a line per epoch).
            Defaults to `0`.

    Returns:
        A `TrainedHead`.

    Raises:
        ValueError: fewer than two classes in training, or an empty validation split.

    Example:
        >>> head = train_head(load_split(c, "train"), load_split(c, "val", clean_only=True),
        ...                   num_classes=2)
    """
    present = np.unique(train.labels)
    if len(present) < 2:
        raise ValueError(f"training split holds only class {present.tolist()}: a classifier "
                         "needs at least two classes")
    if len(val.labels) == 0:
        raise ValueError("validation split is empty: re-run `python -m jobs.embed` with "
                         "--val-fraction above 0 (e.g. 0.2)")
    if config.head == "logistic":
        model = _train_logistic(train.embeddings, train.labels, config)
        return TrainedHead("logistic", model, num_classes=num_classes)
    model, history, selection = train_dense(train, val, num_classes, config, verbose)
    return TrainedHead("dense", model, num_classes=num_classes, history=history,
                       selection=selection)
