"""Frozen `keras.applications` backbones by name, with their own preprocessing.

`build_backbone` returns a model that maps images with values in [0, 255] to global-average-pooled
embeddings; `Preprocess` is the serialisable layer that applies a backbone's `preprocess_input`
inside the end-to-end model, so a saved model needs no custom code beyond this package.

Names (lower case): mobilenet, mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large,
efficientnet_b0..b3, efficientnet_v2_b0..b2, resnet50, resnet50_v2, inception_v3, xception,
densenet121, convnext_tiny.
"""
import dataclasses
import hashlib
import os
import warnings

import keras
import tensorflow as tf

from pipeline.validation import check_choice, check_scalar

__all__ = ["BackboneSpec", "BACKBONES", "BackboneError", "get_spec", "resolve_weights", "weights_digest",
           "build_backbone", "Preprocess", "Embedder"]


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone.

    Attributes:
        name: the registry name.
        constructor: the `keras.applications` attribute name, e.g. `"MobileNetV2"`.
        module: the `keras.applications` module holding its `preprocess_input`.
        default_size: its native input side in pixels.
        has_alpha: whether it takes a width multiplier `alpha`.
    """

    name: str
    constructor: str
    module: str
    default_size: int
    has_alpha: bool = False


BACKBONES = {spec.name: spec for spec in (
    BackboneSpec("mobilenet", "MobileNet", "mobilenet", 224, has_alpha=True),
    BackboneSpec("mobilenet_v2", "MobileNetV2", "mobilenet_v2", 224, has_alpha=True),
    BackboneSpec("mobilenet_v3_small", "MobileNetV3Small", "mobilenet_v3", 224, has_alpha=True),
    BackboneSpec("mobilenet_v3_large", "MobileNetV3Large", "mobilenet_v3", 224, has_alpha=True),
    BackboneSpec("efficientnet_b0", "EfficientNetB0", "efficientnet", 224),
    BackboneSpec("efficientnet_b1", "EfficientNetB1", "efficientnet", 240),
    BackboneSpec("efficientnet_b2", "EfficientNetB2", "efficientnet", 260),
    BackboneSpec("efficientnet_b3", "EfficientNetB3", "efficientnet", 300),
    BackboneSpec("efficientnet_v2_b0", "EfficientNetV2B0", "efficientnet_v2", 224),
    BackboneSpec("efficientnet_v2_b1", "EfficientNetV2B1", "efficientnet_v2", 240),
    BackboneSpec("efficientnet_v2_b2", "EfficientNetV2B2", "efficientnet_v2", 260),
    BackboneSpec("resnet50", "ResNet50", "resnet50", 224),
    BackboneSpec("resnet50_v2", "ResNet50V2", "resnet_v2", 224),
    BackboneSpec("inception_v3", "InceptionV3", "inception_v3", 299),
    BackboneSpec("xception", "Xception", "xception", 299),
    BackboneSpec("densenet121", "DenseNet121", "densenet", 224),
    BackboneSpec("convnext_tiny", "ConvNeXtTiny", "convnext", 224),
)}

_MIN_SIZE = 32


class BackboneError(ValueError):
    """A backbone that cannot be built as asked; the message is one line."""


def get_spec(name):
    """Returns the `BackboneSpec` of `name`, or raises `ValueError` listing the valid names."""
    return BACKBONES[check_choice(name, "backbone", BACKBONES)]


def resolve_weights(weights):
    """Normalises a `--weights` value: `"imagenet"`, `"auto"`, None, or an existing file path.

    Raises:
        ValueError: a path that does not exist.
    """
    if weights is None or str(weights).lower() == "none":
        return None
    if str(weights).lower() in ("imagenet", "auto"):
        return str(weights).lower()
    if not tf.io.gfile.exists(weights):
        raise ValueError(f"weights: expected imagenet, auto, none or an existing file; "
                         f"got {weights!r} (no such file)")
    return weights


def weights_digest(weights):
    """A stable description of resolved weights for cache keys: name, or a file's sha256."""
    if weights in (None, "imagenet"):
        return str(weights).lower()
    with tf.io.gfile.GFile(weights, "rb") as handle:
        return "sha256:" + hashlib.sha256(handle.read()).hexdigest()


def build_backbone(name, *, image_size=None, weights="imagenet", alpha=None):
    """Builds a frozen, global-average-pooled backbone.

    Args:
        name: a registry name, e.g. `"mobilenet_v2"`.
        image_size: input side in pixels. Defaults to the backbone's own size.
        weights: `"imagenet"` (Keras download and cache), `"auto"` (ImageNet when it can be had,
            else random weights with a warning), a weights file path, or None (random weights
            drawn from a fixed seed: the same network in every process). Defaults to
            `"imagenet"`.
        alpha: width multiplier, for backbones that have one. Defaults to Keras's default (1.0).

    Returns:
        `(model, weights_used)`: a non-trainable `keras.Model` mapping preprocessed images to
        embeddings, and the weights actually loaded (`"imagenet"`, a path, or None).

    Raises:
        ValueError: an unknown name, a bad size or alpha.
        BackboneError: weights that cannot be loaded (offline, or another architecture's file).

    Example:
        >>> model, _ = build_backbone("mobilenet_v2", image_size=96, weights=None, alpha=0.35)
    """
    spec = get_spec(name)
    image_size = spec.default_size if image_size is None else image_size
    check_scalar(image_size, "image_size", int, min_val=_MIN_SIZE, max_val=1024)
    if alpha is not None and not spec.has_alpha:
        raise ValueError(f"alpha: backbone {name!r} has no width multiplier; got alpha={alpha}")
    weights = resolve_weights(weights)
    if weights == "auto":
        return _build_auto(spec, image_size, alpha)
    model = _construct(spec, image_size, weights, alpha)
    model.trainable = False
    return model, weights


def _build_auto(spec, image_size, alpha):
    try:
        model = _construct(spec, image_size, "imagenet", alpha)
        weights = "imagenet"
    except BackboneError as err:
        warnings.warn(f"ImageNet weights for {spec.name} are unavailable ({err}); "
                      "FALLING BACK TO RANDOM WEIGHTS: embeddings will be weak.", stacklevel=3)
        model = _construct(spec, image_size, None, alpha)
        weights = None
    model.trainable = False
    return model, weights


def _construct(spec, image_size, weights, alpha):
    constructor = getattr(keras.applications, spec.constructor)
    kwargs = {"include_top": False, "weights": weights, "pooling": "avg",
              "input_shape": (image_size, image_size, 3)}
    if alpha is not None:
        kwargs["alpha"] = alpha
    if weights is None:
        # Random weights are drawn from a fixed seed, so that every job and every worker builds
        # the same network: a `--weights none` cache stays consistent with its fine-tune model.
        keras.utils.set_random_seed(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return constructor(**kwargs)
    except Exception as err:  # Keras raises many types here; turn them into one line
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if weights == "imagenet":
            raise BackboneError(f"could not get ImageNet weights for {spec.name} (Keras needs "
                                f"network access to download them): {first_line}") from err
        if weights is not None:
            raise BackboneError(f"weights file {os.fspath(weights)!r} does not fit backbone "
                                f"{spec.name} (alpha={alpha}): {first_line}") from err
        raise BackboneError(f"cannot build {spec.name}: {first_line}") from err


@keras.saving.register_keras_serializable(package="pipeline")
class Preprocess(keras.layers.Layer):
    """Applies a backbone's `preprocess_input` to images with values in [0, 255].

    Args:
        backbone: the registry name of the backbone whose preprocessing to apply.
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.backbone = get_spec(backbone).name
        module = getattr(keras.applications, get_spec(backbone).module)
        self._preprocess = module.preprocess_input

    def call(self, images):
        return self._preprocess(images)

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


class Embedder:
    """Frozen backbone plus its preprocessing as one compiled function over image batches.

    Args:
        name: registry name.
        image_size: input side. Defaults to the backbone's own.
        weights: as in `build_backbone`. Defaults to `"imagenet"`.
        alpha: as in `build_backbone`. Defaults to None.

    Attributes:
        weights_used: the weights actually loaded.
        embedding_dim: the embedding size.

    Example:
        >>> embed = Embedder("mobilenet_v2", image_size=96, weights=None, alpha=0.35)
        >>> vectors = embed(images)  # (n, 96, 96, 3) in [0, 255] -> (n, 1280)
    """

    def __init__(self, name, *, image_size=None, weights="imagenet", alpha=None):
        self.model, self.weights_used = build_backbone(name, image_size=image_size,
                                                       weights=weights, alpha=alpha)
        self.embedding_dim = int(self.model.output_shape[-1])
        preprocess = Preprocess(name)
        side = self.model.input_shape[1]
        self._forward = tf.function(
            lambda images: self.model(preprocess(images), training=False),
            input_signature=[tf.TensorSpec((None, side, side, 3), tf.float32)])

    def __call__(self, images):
        """Embeds a float32 batch (n, size, size, 3) in [0, 255]; returns float32 (n, dim)."""
        return self._forward(tf.convert_to_tensor(images, tf.float32)).numpy()
