"""Classification heads trained on cached embeddings: no backbone pass at all.

- `dense`: Dropout + Dense, the seeds' head (one logit for two classes, softmax logits for more),
  trained with Adam and early stopping on validation loss (best weights restored); by default five
  such heads of consecutive seeds, trained together in one batched step (each with its own
  initialisation, data order, dropout masks and early stopping, as if trained alone), their
  weights averaged into one (the exact ensemble of their logits). It is saved as a Keras model so
  that the fine-tune job can load it into the end-to-end model. Options: weight decay, label
  smoothing, mixup on embeddings, standardisation.
- `logistic`: scikit-learn `LogisticRegression` on standardised embeddings, a strong fast baseline.

The same features, config and seed give the same head.
"""
import dataclasses
import hashlib
import json
import math
import os
import pickle

import numpy as np

from pipeline.fields import check_choices, field
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
        patience: early-stopping patience on validation loss. Defaults to `5`.
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
            (flowers at 75 images per class); on GENKI-4K it costs about three times one head's
            seconds (bench/head_speed.py).
        seed: seed of initialisation, shuffling and subsets. Defaults to `123`.

    The defaults converge in seconds on GENKI-4K embeddings (bench/head_vs_seed.py) with the
    validation accuracy of slower settings (1e-3, batch 128, patience 10: 72 epochs, 18 s).
    """

    head: str = field("dense", choices=HEADS, help="kind of head")
    epochs: int = field(200, help="maximum epochs (dense)")
    batch_size: int = field(512, help="training batch size")
    learning_rate: float = field(1e-2, help="Adam's learning rate (dense)")
    dropout: float = field(0.2, help="dropout before the dense layer")
    patience: int = field(5, help="early-stopping patience on validation loss")
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
        meta: what `save` writes to `head.json`.
    """

    def __init__(self, kind, model, *, num_classes, history=None, meta=None):
        self.kind, self.model, self.num_classes = kind, model, num_classes
        self.history = history or {}
        self.meta = meta or {}

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
                "history": self.history}
        with open(os.path.join(directory, _META_FILE), "w") as handle:
            json.dump(meta, handle, indent=2, sort_keys=True)


def load_head(directory):
    """Loads a head saved by `TrainedHead.save`.

    Raises:
        ValueError: the folder holds no saved head.
    """
    meta_path = os.path.join(directory, _META_FILE)
    if not os.path.isfile(meta_path):
        raise ValueError(f"head {directory!r}: no {_META_FILE}; train one with "
                         "`python -m jobs.train_head`")
    with open(meta_path) as handle:
        meta = json.load(handle)
    if meta["kind"] == "dense":
        import keras

        model = keras.models.load_model(os.path.join(directory, _KERAS_FILE))
    else:
        with open(os.path.join(directory, _SKLEARN_FILE), "rb") as handle:
            model = pickle.load(handle)
    return TrainedHead(meta["kind"], model, num_classes=meta["num_classes"],
                       history=meta.get("history"), meta=meta)


def _class_weights(labels, num_classes):
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return {c: float(len(labels) / (num_classes * counts[c])) for c in range(num_classes)
            if counts[c]}


def build_dense_head(embedding_dim, num_classes, *, dropout=0.2):
    """Dropout + Dense: one logit for two classes, `num_classes` logits otherwise."""
    import keras

    return keras.Sequential([
        keras.Input((embedding_dim,), name="embedding"),
        keras.layers.Dropout(dropout, name="head_dropout"),
        keras.layers.Dense(1 if num_classes == 2 else num_classes, name="head_logits"),
    ], name="head")


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


def _targets(labels, num_classes):
    """Float targets for the dense head: (n, 1) for two classes, one-hot otherwise."""
    labels = np.asarray(labels)
    if num_classes == 2:
        return labels.reshape(-1, 1).astype(np.float32)
    return np.eye(num_classes, dtype=np.float32)[labels]


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


def _initial_weights(seeds, dim, outputs):
    """The members' kernels (members, dim, outputs), each Glorot-uniform from its own seed as
    Keras's `Dense` draws it, and zero biases (members, outputs)."""
    import keras

    kernels = [keras.initializers.GlorotUniform(seed=seed)((dim, outputs)) for seed in seeds]
    return (keras.Variable(np.stack([keras.ops.convert_to_numpy(k) for k in kernels]),
                           name="member_kernels"),
            keras.Variable(np.zeros((len(seeds), outputs), np.float32), name="member_biases"))


def _member_batch(x, y, rows, key, *, dropout, mixup):
    """One member's training batch: its rows, mixed with their mirrored partners (mixup, weights
    from Beta(mixup, mixup)) and dropped out, all drawn from the member's step `key`."""
    import tensorflow as tf

    x, y = tf.gather(x, rows), tf.gather(y, rows)
    drop_key, gamma_key, other_key = tf.unstack(tf.random.experimental.stateless_split(key, 3))
    if mixup > 0:
        g1 = tf.random.stateless_gamma([tf.shape(x)[0], 1], gamma_key, mixup)
        weight = g1 / (g1 + tf.random.stateless_gamma([tf.shape(x)[0], 1], other_key, mixup))
        x = weight * x + (1 - weight) * tf.reverse(x, [0])
        y = weight * y + (1 - weight) * tf.reverse(y, [0])
    if dropout > 0:
        x = _dropout(x, dropout, drop_key)
    return x, y


def _dropout(x, rate, key):
    """Inverted dropout of a (rows, dim) batch at `rate` rounded to a multiple of 2**-16, from
    16 random bits per element: half the random numbers of `tf.nn.experimental.stateless_dropout`
    (whose draws are most of a training step's time), the same expectation."""
    import tensorflow as tf

    rows, dim = tf.shape(x)[0], x.shape[1]
    bits = tf.random.stateless_uniform([rows, (dim + 1) // 2], key, minval=None, maxval=None,
                                       dtype=tf.uint32)
    draws = tf.reshape(tf.bitcast(bits, tf.uint16), [rows, -1])[:, :dim]
    threshold = round(rate * 2 ** 16)
    return tf.where(draws >= threshold, x * (2 ** 16 / (2 ** 16 - threshold)), 0.0)


def _losses_and_hits(targets, logits, num_classes, label_smoothing):
    """Per-example soft losses (as `soft_loss_and_metric`'s) and correct predictions."""
    import keras
    import tensorflow as tf

    if num_classes == 2:
        losses = keras.losses.binary_crossentropy(targets, logits, from_logits=True,
                                                  label_smoothing=label_smoothing)
        hits = (logits[..., 0] > 0.0) == (targets[..., 0] > 0.5)
    else:
        losses = keras.losses.categorical_crossentropy(targets, logits, from_logits=True,
                                                       label_smoothing=label_smoothing)
        hits = tf.argmax(logits, -1) == tf.argmax(targets, -1)
    return losses, tf.cast(hits, tf.float32)


class _Members:
    """The ensemble's dense heads as one batched kernel (members, dim, outputs), trained together.

    Member `m` sees only what training it alone would: its initialisation, data order, dropout
    masks and mixup weights are drawn from its seed `seeds[m]`, and the members' losses are
    summed, so that each one's gradient (and AdamW's elementwise step) is its own.
    """

    def __init__(self, x, y, val_x, val_y, *, seeds, num_classes, config):
        import keras
        import tensorflow as tf

        self.seeds, self.num_classes, self.config = seeds, num_classes, config
        self.x, self.y = tf.constant(x, tf.float32), tf.constant(_targets(y, num_classes))
        self.val_x = tf.constant(val_x, tf.float32)
        self.val_y = tf.constant(_targets(val_y, num_classes))
        weights = _class_weights(y, num_classes) if config.class_weight else {}
        self.class_weights = tf.constant([weights.get(c, 1.0) for c in range(num_classes)],
                                         tf.float32)
        self.variables = _initial_weights(seeds, x.shape[1], self.y.shape[1])
        self.optimizer = keras.optimizers.AdamW(config.learning_rate,
                                                weight_decay=config.weight_decay,
                                                name="members_adam_w")
        self.optimizer.build(self.variables)
        members = len(seeds)
        # No autograph: the steps branch with `tf.cond` already, and converting them would
        # cost most of their tracing time.
        self._step = tf.function(self._train_step, autograph=False, input_signature=[
            tf.TensorSpec([members, None], tf.int32), tf.TensorSpec([], tf.int64),
            tf.TensorSpec([members], tf.bool)])
        self._evaluate = tf.function(self._validation_loss_and_accuracy, autograph=False)

    def train_epoch(self, epoch, training):
        """One pass over the training rows in each member's own order of this epoch.

        Args:
            epoch: the epoch's index, from 0.
            training: which members still train (a boolean array); the others are skipped.

        Returns:
            `(loss, accuracy)` of each member, averaged over the epoch's rows, as Keras's logs
            (zero for skipped members).
        """
        size, batch = len(self.x), self.config.batch_size
        orders = np.stack([np.random.default_rng([seed, epoch]).permutation(size)
                           for seed in self.seeds]).astype(np.int32)
        steps = math.ceil(size / batch)
        totals = np.zeros((2, len(self.seeds)))
        for index in range(steps):
            rows = orders[:, index * batch:(index + 1) * batch]
            losses, accuracies = self._step(rows, np.int64(epoch * steps + index), training)
            totals += rows.shape[1] * np.stack([losses.numpy(), accuracies.numpy()])
        return totals / size

    def validate(self):
        """Each member's validation loss and accuracy."""
        return tuple(value.numpy() for value in self._evaluate())

    def weights(self):
        """The members' kernels and biases as arrays."""
        return [variable.numpy() for variable in self.variables]

    def _train_step(self, rows, step, training):
        import tensorflow as tf

        batches = [self._member_batch(m, rows[m], step, training[m])
                   for m in range(len(self.seeds))]
        with tf.GradientTape() as tape:
            figures = [self._member_figures(m, x, targets, weighted=True)
                       for m, (x, targets) in enumerate(batches)]
            losses = tf.where(training, tf.stack([loss for loss, _ in figures]), 0.0)
            total = tf.reduce_sum(losses)
        gradients = tape.gradient(total, self.variables)
        self.optimizer.apply_gradients(zip(gradients, self.variables))
        return losses, tf.where(training, tf.stack([accuracy for _, accuracy in figures]), 0.0)

    def _member_batch(self, m, rows, step, training):
        """Member `m`'s batch of this step, or zeros where it no longer trains (its draws, most
        of a step's time, are skipped)."""
        import tensorflow as tf

        key = tf.stack([tf.constant(self.seeds[m], tf.int64), step])
        return tf.cond(training, lambda: _member_batch(
            self.x, self.y, rows, key, dropout=self.config.dropout, mixup=self.config.mixup),
            lambda: (tf.zeros([tf.shape(rows)[0], self.x.shape[1]]),
                     tf.zeros([tf.shape(rows)[0], self.y.shape[1]])))

    def _validation_loss_and_accuracy(self):
        import tensorflow as tf

        figures = [self._member_figures(m, self.val_x, self.val_y, weighted=False)
                   for m in range(len(self.seeds))]
        return (tf.stack([loss for loss, _ in figures]),
                tf.stack([accuracy for _, accuracy in figures]))

    def _member_figures(self, m, x, targets, *, weighted):
        """Member `m`'s mean loss on a batch (class-weighted in training, as Keras's
        `class_weight`) and its accuracy. Every member has ops of its own, so that its figures
        do not depend on how many members train beside it."""
        import tensorflow as tf

        logits = tf.matmul(x, self.variables[0][m]) + self.variables[1][m]
        losses, hits = _losses_and_hits(targets, logits, self.num_classes,
                                        self.config.label_smoothing)
        if weighted:
            losses *= tf.gather(self.class_weights, tf.cast(
                tf.round(targets[:, 0]) if self.num_classes == 2 else tf.argmax(targets, -1),
                tf.int32))
        return tf.reduce_mean(losses), tf.reduce_mean(hits)


class _EarlyStopping:
    """Keras's `EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)`,
    for each member on its own: a member stops after `patience` epochs without a lower
    validation loss, and keeps the weights of its best epoch."""

    def __init__(self, members, patience):
        self.patience = patience
        self.best = np.full(members, np.inf)
        self.wait = np.zeros(members, np.int64)
        self.training = np.ones(members, bool)
        self.best_weights = None

    def update(self, epoch, val_loss, weights):
        """Takes each training member's validation loss and weights (arrays, members first)."""
        improved = self.training & ((val_loss < self.best) | (epoch == 0))
        self.wait += self.training
        self.wait[improved] = 0
        self.best = np.where(improved, val_loss, self.best)
        if self.best_weights is None:
            self.best_weights = [array.copy() for array in weights]
        for best, current in zip(self.best_weights, weights):
            best[improved] = current[improved]
        self.training &= self.wait < self.patience


def _print_epoch(epoch, epochs, figures, training):
    """A line per epoch, as Keras's `verbose=2`: the mean figures of the members that trained."""
    shown = " - ".join(f"{name} {values[training].mean():.4f}" for name, values in figures.items())
    print(f"epoch {epoch + 1}/{epochs}: {shown} (mean of the {training.sum()} member(s) "
          "training)", flush=True)


def _fit_members(members, config, verbose):
    """Trains until every member has stopped; returns its best weights and the first member's
    history (its epochs only)."""
    stopping = _EarlyStopping(len(members.seeds), config.patience)
    history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    for epoch in range(config.epochs):
        training = stopping.training.copy()
        figures = dict(zip(history, (*members.train_epoch(epoch, training),
                                     *members.validate())))
        if training[0]:
            for name, values in figures.items():
                history[name].append(float(values[0]))
        stopping.update(epoch, figures["val_loss"], members.weights())
        if verbose:
            _print_epoch(epoch, config.epochs, figures, training)
        if not stopping.training.any():
            break
    history["best_epoch"] = int(np.argmin(history["val_loss"])) + 1
    return stopping.best_weights, history


def _train_dense(train_x, train_y, val_x, val_y, num_classes, config, verbose):
    """The `config.ensemble` dense heads of seeds `seed`, `seed + 1`, ..., trained together,
    as one head holding their mean weights; and the first member's history."""
    import keras

    scaling = _standardizer(train_x) if config.standardize else None
    x, scaled_val_x = ((train_x, val_x) if scaling is None else
                       ((train_x - scaling[0]) / scaling[1], (val_x - scaling[0]) / scaling[1]))
    members = _Members(x, train_y, scaled_val_x, val_y,
                       seeds=[config.seed + m for m in range(config.ensemble)],
                       num_classes=num_classes, config=config)
    (kernels, biases), history = _fit_members(members, config, verbose)
    model = build_dense_head(train_x.shape[1], num_classes, dropout=config.dropout)
    loss, metric = soft_loss_and_metric(num_classes, config.label_smoothing)
    model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate,
                                                   weight_decay=config.weight_decay),
                  loss=loss, metrics=[metric])
    model.optimizer.build(model.trainable_variables)  # head.keras as before: compiled, built
    model.get_layer("head_logits").set_weights([kernels.mean(0), biases.mean(0)])
    if scaling is not None:
        _fold_standardization(model, *scaling)
    return model, history


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
    model, history = _train_dense(train.embeddings, train.labels, val.embeddings, val.labels,
                                  num_classes, config, verbose)
    return TrainedHead("dense", model, num_classes=num_classes, history=history)
