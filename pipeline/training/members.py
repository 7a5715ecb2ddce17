"""The dense heads of an ensemble trained together: one compiled step over a batched kernel.

`fit_members` trains the members of seeds `seeds` on the same embeddings, each exactly as it
would be trained alone (its initialisation, data order, dropout masks, mixup weights and early
stopping its own), and returns their best weights stacked, for `pipeline.training.heads` to
average into one head. TensorFlow and Keras are imported inside the functions.
"""
import math

import numpy as np

__all__ = ["fit_members"]


def _class_weights(labels, num_classes):
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return {c: float(len(labels) / (num_classes * counts[c])) for c in range(num_classes)
            if counts[c]}


def _targets(labels, num_classes):
    """Float targets for the dense head: (n, 1) for two classes, one-hot otherwise."""
    labels = np.asarray(labels)
    if num_classes == 2:
        return labels.reshape(-1, 1).astype(np.float32)
    return np.eye(num_classes, dtype=np.float32)[labels]


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
        self.best_epoch = np.zeros(members, np.int64)
        self.wait = np.zeros(members, np.int64)
        self.training = np.ones(members, bool)
        self.best_weights = None

    def update(self, epoch, val_loss, weights):
        """Takes each training member's validation loss and weights (arrays, members first)."""
        improved = self.training & ((val_loss < self.best) | (epoch == 0))
        self.wait += self.training
        self.wait[improved] = 0
        self.best = np.where(improved, val_loss, self.best)
        self.best_epoch[improved] = epoch + 1
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


def fit_members(x, y, val_x, val_y, *, seeds, num_classes, config, verbose=0, epochs=None):
    """Trains the dense heads of `seeds` together until every one has stopped.

    Args:
        x, y: training embeddings (n, dim) and int labels (n,).
        val_x, val_y: validation embeddings and labels.
        seeds: one seed per member.
        num_classes: number of classes (one logit for two).
        config: a `pipeline.training.heads.HeadConfig`.
        verbose: a line per epoch when true. Defaults to `0`.
        epochs: train every member exactly this many epochs and keep its last weights
            (validation is scored for the history only); None: early stopping on validation
            loss (`config.patience`, at most `config.epochs`). Defaults to None.

    Returns:
        `([kernels (members, dim, outputs), biases (members, outputs)], history, best_epochs)`:
        each member's best (or last) weights, the first member's history (its epochs only), and
        each member's best epoch by validation loss.
    """
    members = _Members(x, y, val_x, val_y, seeds=seeds, num_classes=num_classes, config=config)
    stopping = _EarlyStopping(len(members.seeds), config.patience if epochs is None
                              else np.inf)
    history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    total = config.epochs if epochs is None else epochs
    for epoch in range(total):
        training = stopping.training.copy()
        figures = dict(zip(history, (*members.train_epoch(epoch, training),
                                     *members.validate())))
        if training[0]:
            for name, values in figures.items():
                history[name].append(float(values[0]))
        stopping.update(epoch, figures["val_loss"], members.weights())
        if verbose:
            _print_epoch(epoch, total, figures, training)
        if not stopping.training.any():
            break
    history["best_epoch"] = int(np.argmin(history["val_loss"])) + 1
    return ((stopping.best_weights if epochs is None else members.weights()), history,
            stopping.best_epoch.tolist())
