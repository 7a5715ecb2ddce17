"""The end-to-end model: image -> augmentation -> preprocess -> backbone -> dropout -> dense.

    image -> augmentation (random, training only) -> the backbone's preprocess_input
          -> backbone (training=False: BatchNorm in inference mode) -> pooling -> dropout -> dense

`build_model` makes it for a cache (its backbone, weights, size and augmentation), the dense layer
copied from a head trained on that cache; `set_trainable` unfreezes the backbone, all or in part;
`compile_model` and `learning_rate_schedule` set up training; `load_finetuned` reads back a
`model.keras` (TTA-wrapped or not, see `pipeline.training.tta`) with its `model.json`.
"""
import json
import posixpath

import keras
import tensorflow as tf

from pipeline.data.augment import AugmentConfig, build_augmenter
from pipeline.features.backbones import Preprocess, build_backbone, manifest_weights
from pipeline.keras_compat import variable_index
from pipeline.publish import verify_published
from pipeline.training.config import peak_learning_rate
from pipeline.training.heads import (logits_to_proba, loss_and_metric,
                                     soft_loss_and_metric)
from pipeline.training.ensemble import trained_model

__all__ = ["MODEL_FILE", "MODEL_INFO", "backbone_of", "build_model", "set_trainable",
           "learning_rate_schedule", "LayerScaledAdam", "compile_model", "soft_targets",
           "probabilities", "load_finetuned"]

#: The fine-tuned model, and its description (class names, image size, cache key) beside it.
MODEL_FILE, MODEL_INFO = "model.keras", "model.json"
#: What marks a head folder (`pipeline.training.heads`), whose files are no fine-tuned model.
_HEAD_META = "head.json"


def backbone_of(model):
    """The backbone sub-model of an end-to-end model built by `build_model` (or its TTA wrapper)."""
    return trained_model(model).get_layer("backbone")


def build_model(manifest, head=None):
    """Builds the end-to-end model for a cache, its dense layer copied from `head`.

    Args:
        manifest: the cache's manifest.
        head: a dense `TrainedHead` of the same cache, or None for a fresh head.

    Returns:
        A `keras.Model` mapping images in [0, 255] to logits (one for two classes).
    """
    config = manifest["config"]
    weights = manifest_weights(manifest)  # the same file, wherever it is found now
    backbone, _ = build_backbone(config["backbone"], image_size=config["image_size"],
                                 weights=weights, alpha=config["alpha"])
    backbone.name = "backbone"
    num_classes = len(manifest["class_names"])
    side = config["image_size"]
    inputs = keras.Input((side, side, 3), name="image")
    x = keras.Sequential(build_augmenter(AugmentConfig(**config["augment"])),
                         name="augment")(inputs)
    x = Preprocess(config["backbone"], name="preprocess")(x)
    x = backbone(x, training=False)
    dropout = head.model.get_layer("head_dropout").rate if head else 0.2
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(1 if num_classes == 2 else num_classes, name="head_logits")(x)
    model = keras.Model(inputs, outputs, name="finetune")
    if head is not None:
        model.get_layer("head_logits").set_weights(head.model.get_layer("head_logits")
                                                   .get_weights())
    return model


def set_trainable(model, config):
    """Unfreezes the backbone from `fine_tune_at` (or its last `unfreeze_last` layers, or all).

    BatchNormalization layers stay frozen (and run in inference mode, as the backbone is called
    with `training=False`).

    Returns:
        The index of the first unfrozen backbone layer.

    Raises:
        ValueError: `fine_tune_at` or `unfreeze_last` beyond the backbone's layer count.
    """
    backbone = backbone_of(model)
    layers = backbone.layers
    if config.fine_tune_at is not None:
        start = config.fine_tune_at
    elif config.unfreeze_last is not None:
        start = len(layers) - config.unfreeze_last
    else:
        start = 0
    if not 0 <= start < len(layers):
        raise ValueError(f"fine_tune_at: expected a layer index below {len(layers)} (the "
                         f"backbone's layer count; see --list-layers); got {start}")
    backbone.trainable = True
    for index, layer in enumerate(layers):
        layer.trainable = index >= start and not isinstance(
            layer, keras.layers.BatchNormalization)
    return start


def learning_rate_schedule(config, steps_per_epoch):
    """The learning rate of `config` (its peak: `pipeline.training.config.peak_learning_rate`):
    a float, or a `CosineDecay` over its epochs; either after a linear warm-up from 0 over
    `config.warmup_epochs` (for the constant rate, a `CosineDecay` that does not decay:
    `alpha=1`)."""
    peak = peak_learning_rate(config, steps_per_epoch)
    warmup = min(config.warmup_epochs, config.epochs) * steps_per_epoch
    total = config.epochs * steps_per_epoch
    if config.schedule == "constant" and not warmup:
        return peak
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(peak, total)
    return keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total - warmup), warmup_steps=warmup, warmup_target=peak,
        alpha=1.0 if config.schedule == "constant" else 0.0)


@keras.saving.register_keras_serializable(package="pipeline")
class LayerScaledAdam(keras.optimizers.Adam):
    """Adam whose steps on some layers' weights are scaled (discriminative learning rates).

    Args:
        layer_scales: `{layer name: factor}`; a weight whose path starts with `<layer name>/`
            moves with `factor` times the learning rate, every other weight with the rate itself.
            Defaults to `{}` (plain Adam).
        **kwargs: `keras.optimizers.Adam`'s arguments.
    """

    def __init__(self, *args, layer_scales=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.layer_scales = dict(layer_scales or {})

    def build(self, variables):
        super().build(variables)
        self._scales = [self.layer_scales.get(v.path.split("/")[0], 1.0) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        scale = self._scales[variable_index(self, variable)]
        super().update_step(gradient, variable, learning_rate * scale)

    def get_config(self):
        return {**super().get_config(), "layer_scales": self.layer_scales}


def compile_model(model, *, num_classes, learning_rate, ema_momentum=None, head_scale=1.0,
                  label_smoothing=0.0, float_targets=False):
    """Compiles with Adam (`learning_rate`: a float or a schedule; with `ema_momentum`, Adam also
    keeps a moving average of the weights; the dense layer's rate is `head_scale` times the
    backbone's) and the head's loss (logits) and an `accuracy` metric. With `float_targets` or
    `label_smoothing`, the loss takes float targets (`soft_targets`: smoothed by that much, or
    mixed)."""
    loss, metric = (soft_loss_and_metric(num_classes, label_smoothing)
                    if label_smoothing or float_targets else loss_and_metric(num_classes))
    optimizer = LayerScaledAdam(learning_rate, use_ema=ema_momentum is not None,
                                ema_momentum=ema_momentum or 0.99,
                                layer_scales={"head_logits": head_scale} if head_scale != 1.0
                                else {})
    model.compile(optimizer=optimizer, loss=loss, metrics=[metric])


def soft_targets(dataset, num_classes):
    """A dataset of (images, labels) with float targets: (n, 1) for two classes, one-hot
    otherwise, as the loss of `compile_model(..., float_targets=True)` takes them."""
    import tensorflow as tf

    if num_classes == 2:
        return dataset.map(lambda images, y: (images, tf.cast(y, tf.float32)[:, None]))
    return dataset.map(lambda images, y: (images, tf.one_hot(y, num_classes)))


def probabilities(model, dataset, num_classes):
    """Class probabilities (n, num_classes) of the model on a dataset, in inference mode."""
    return logits_to_proba(model.predict(dataset, verbose=0), num_classes)


def load_finetuned(model_path):
    """Loads a fine-tuned `model.keras` (or its folder) and the `model.json` written beside it.

    Both are read through `tf.io.gfile`, so they may be local or on any scheme it reads
    (`gs://`, ...); Keras copies a remote `model.keras` to a local temporary file to load it.

    Returns:
        `(model, info)`; info holds class_names, image_size, cache_key and embed_config.

    Raises:
        ValueError: either file is missing, `model_path` is a file inside a head folder, or a
            file of its published folder is missing or truncated (`pipeline.publish`).
    """
    a_file = not tf.io.gfile.isdir(model_path)
    model_path = model_path if a_file else posixpath.join(model_path, MODEL_FILE)
    folder = posixpath.dirname(model_path)
    info_path = posixpath.join(folder, MODEL_INFO)
    if not (tf.io.gfile.exists(model_path) and tf.io.gfile.exists(info_path)):
        if a_file and tf.io.gfile.exists(posixpath.join(folder, _HEAD_META)):
            raise ValueError(f"model {model_path!r} is a file of the head in {folder or '.'}: "
                             f"pass the folder {folder or '.'}")
        raise ValueError(f"model {model_path!r}: expected a model.keras with its {MODEL_INFO} "
                         "beside it (both written by jobs.finetune)")
    verify_published(folder or ".", digests=False)
    with tf.io.gfile.GFile(info_path) as handle:
        info = json.load(handle)
    return keras.models.load_model(model_path), info
