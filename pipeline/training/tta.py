"""Test-time augmentation: the shipped model averages its logits over an image and its mirror.

A cache whose augmentation flips images horizontally (the default recipe) declares the data
mirror-invariant: the head and the fine-tuned model were trained on mirrored copies. Predicting on
both the image and its mirror and averaging the logits costs one more forward pass and removes
some of the model's left/right noise. It is a rule, not a choice made on validation (where a
handful of images would decide it): with `tta="auto"` every model of a mirroring cache averages
(`score_candidate` scores it that way, and logs the plain model's figures beside it), and
`with_flip_tta` wraps what ships, so that `jobs.evaluate` and the exported SavedModel and TFLite
files score exactly that model.
"""
import keras

from pipeline.training.config import TTA_CHOICES
from pipeline.training.selection import validation_score
from pipeline.validation import check_choice

__all__ = ["TTA_CHOICES", "flip_tta_wanted", "HorizontalFlip", "with_flip_tta", "has_flip_tta",
           "score_candidate"]

#: Augmentations that mirror images: with them, `tta="auto"` averages over the mirror (`flip`:
#: always; `none`: never).
_MIRRORING = ("horizontal", "horizontal_and_vertical")


def flip_tta_wanted(choice, embed_config):
    """Whether `choice` ("auto", "flip" or "none") has the model average over the mirror, for a
    cache's config."""
    check_choice(choice, "tta", TTA_CHOICES)
    if choice == "auto":
        return embed_config.get("augment", {}).get("flip") in _MIRRORING
    return choice == "flip"


@keras.saving.register_keras_serializable(package="pipeline")
class HorizontalFlip(keras.layers.Layer):
    """Mirrors a batch of images (n, height, width, channels) left to right, always."""

    def call(self, images):
        return keras.ops.flip(images, axis=2)


def with_flip_tta(model):
    """A model with `model`'s input and output whose logits are the mean over image and mirror.

    The wrapped model is shared (one set of weights); a model already wrapped is returned as is.
    """
    if has_flip_tta(model):
        return model
    inputs = keras.Input(model.input_shape[1:], name="image")
    logits = keras.layers.Average(name="flip_tta_mean")(
        [model(inputs), model(HorizontalFlip(name="mirror")(inputs))])
    return keras.Model(inputs, logits, name=f"{model.name}_flip_tta")


def has_flip_tta(model):
    """Whether `model`, or a model inside it (an ensemble's members), was made by
    `with_flip_tta`."""
    return any(layer.name == "flip_tta_mean" or (isinstance(layer, keras.Model)
                                                  and has_flip_tta(layer))
               for layer in model.layers)


def score_candidate(model, val, labels, num_classes, *, flip_tta, logits=None):
    """Validation figures of a fine-tune candidate, and the score of the way it would ship.

    Args:
        model: the training model (no TTA wrapper).
        val: the validation dataset of (image batch, label batch).
        labels: the validation labels, in dataset order.
        num_classes: the class count.
        flip_tta: whether the model ships averaged over the mirror.
        logits: the model's logits on `val`, when already computed. Defaults to None.

    Returns:
        `(logs, score)`: logs hold `val_accuracy` and `val_loss` of the model as trained (as `fit`
        reports them), plus `val_tta_accuracy` and `val_tta_loss` with the mirror; score is
        `{"val_accuracy", "val_loss", "flip_tta"}` of the way it ships.
    """
    if logits is None:
        logits = model.predict(val, verbose=0)
    logs = validation_score(logits, labels, num_classes)
    if not flip_tta:
        return logs, {**logs, "flip_tta": False}
    mirrored = model.predict(val.map(lambda images, y: (keras.ops.flip(images, axis=2), y)),
                             verbose=0)
    averaged = validation_score((logits + mirrored) / 2, labels, num_classes)
    logs = {**logs, "val_tta_accuracy": averaged["val_accuracy"],
            "val_tta_loss": averaged["val_loss"]}
    return logs, {**averaged, "flip_tta": True}
