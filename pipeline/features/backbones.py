"""Frozen `keras.applications` backbones by name, with their own preprocessing.

`build_backbone` returns a model that maps images with values in [0, 255] to global-average-pooled
embeddings; `Preprocess` is the serialisable layer that applies a backbone's `preprocess_input`
inside the end-to-end model, so a saved model needs no custom code beyond this package.

Names (lower case): mobilenet, mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large,
efficientnet_b0..b3, efficientnet_v2_b0..b2, resnet50, resnet50_v2, inception_v3, xception,
densenet121, convnext_tiny.
"""
import contextlib
import hashlib
import io
import os
import posixpath
import sys
import tempfile
import warnings

import keras
import tensorflow as tf

from pipeline.features.registry import BACKBONES, BackboneSpec, get_spec, keras_weight_files
from pipeline.keras_compat import keras_home
from pipeline.validation import check_scalar

__all__ = ["BackboneSpec", "BACKBONES", "BackboneError", "get_spec", "keras_weight_files",
           "keras_cache_dir", "find_weights", "resolve_weights", "weights_digest",
           "manifest_weights", "build_backbone", "Preprocess", "Embedder"]


_MIN_SIZE = 32


class BackboneError(ValueError):
    """A backbone that cannot be built as asked; the message is one line."""


def keras_cache_dir():
    """Keras's weights cache, `$KERAS_HOME/models` (by default `~/.keras/models`)."""
    return os.path.join(os.path.expanduser(keras_home()), "models")


def find_weights(name, *, image_size=None, alpha=None, weights_dir=None):
    """The first of a backbone's Keras weight files in `weights_dir`, then in Keras's cache.

    Looks only at files that are there: never the network.

    Args:
        name: a registry name.
        image_size: input side. Defaults to the backbone's own.
        alpha: width multiplier. Defaults to Keras's 1.0.
        weights_dir: a folder of Keras weight files under their own names (local or `gs://`),
            searched first. Defaults to `None`.

    Returns:
        The file's path, or None when it is in neither place.
    """
    folders = [f for f in (weights_dir, keras_cache_dir()) if f]
    for folder in folders:
        for file_name in keras_weight_files(name, image_size=image_size, alpha=alpha):
            path = posixpath.join(folder, file_name) if "://" in folder else os.path.join(
                folder, file_name)
            if tf.io.gfile.exists(path):
                return path
    return None


def resolve_weights(weights):
    """Normalises a `--weights` value: `"imagenet"`, None, or an existing file path.

    `"auto"` is kept as another spelling of `"imagenet"` (old command lines); random weights
    come only from `"none"`/None, never as a fallback.

    Raises:
        ValueError: a path that does not exist.
    """
    if weights is None or str(weights).lower() == "none":
        return None
    if str(weights).lower() in ("imagenet", "auto"):
        return "imagenet"
    if not tf.io.gfile.exists(weights):
        raise ValueError(f"weights: expected imagenet, none or an existing file; "
                         f"got {weights!r} (no such file)")
    return weights


def weights_digest(weights):
    """A stable description of weights for cache keys: a file's content sha256, or its name.

    The same file gives the same digest wherever it is found (a weights folder, Keras's cache).
    """
    if weights in (None, "imagenet"):
        return str(weights).lower()
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(weights, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def manifest_weights(manifest):
    """The weights a cache was embedded with, found again for the jobs that rebuild its backbone.

    Tries the manifest's `weights_used` file, then the same Keras file in the cache's
    `weights_dir` and in Keras's cache; a file found counts only when its content digest is the
    manifest's `weights_digest`.

    Args:
        manifest: a cache's manifest.

    Returns:
        A weights file path, or None (random weights, as embedded).

    Raises:
        BackboneError: the cache's weights file is nowhere here (one line).
    """
    config, used = manifest["config"], manifest["weights_used"]
    if used is None:
        return None
    wanted = manifest.get("weights_digest")
    found = find_weights(config["backbone"], image_size=config["image_size"],
                         alpha=config["alpha"], weights_dir=config.get("weights_dir"))
    for path in dict.fromkeys(p for p in (used, found) if p and p != "imagenet"):
        if tf.io.gfile.exists(path) and wanted in (None, weights_digest(path)):
            return path
    if used == "imagenet" and wanted == "imagenet":
        return "imagenet"
    raise BackboneError(f"the cache's weights file {used} (digest {wanted}) is not here, nor in "
                        f"its weights folder or Keras's cache {keras_cache_dir()}; put that file "
                        "in one of those places")


def build_backbone(name, *, image_size=None, weights="imagenet", alpha=None, weights_dir=None):
    """Builds a frozen, global-average-pooled backbone.

    ImageNet weights are resolved in this order: Keras's file for this backbone, width and size
    (or its 224-px no-top file, which loads at any size) in `weights_dir`, then in Keras's cache
    (`$KERAS_HOME/models`), then Keras's download. Where none works, `BackboneError` names the
    file, the places searched and the ways out; random weights are never a fallback.

    Args:
        name: a registry name, e.g. `"mobilenet_v2"`.
        image_size: input side in pixels. Defaults to the backbone's own size.
        weights: `"imagenet"` (resolved as above; `"auto"` is the same), a weights file path
            (local or `gs://`), or None (random weights drawn from a fixed seed: the same
            network in every process). Defaults to `"imagenet"`.
        alpha: width multiplier, for backbones that have one. Defaults to Keras's default (1.0).
        weights_dir: a folder of Keras weight files under their own names (local or `gs://`),
            searched first. Defaults to `None`.

    Returns:
        `(model, weights_used)`: a non-trainable `keras.Model` mapping preprocessed images to
        embeddings, and the weights file actually loaded (a path; None for random weights).

    Raises:
        ValueError: an unknown name, a bad size or alpha.
        BackboneError: weights that cannot be found or loaded (one line).

    Example:
        >>> model, _ = build_backbone("mobilenet_v2", image_size=96, weights=None, alpha=0.35)
    """
    spec = get_spec(name)
    image_size = spec.default_size if image_size is None else image_size
    check_scalar(image_size, "image_size", int, min_val=_MIN_SIZE, max_val=1024)
    if alpha is not None and not spec.has_alpha:
        raise ValueError(f"alpha: backbone {name!r} has no width multiplier; got alpha={alpha}")
    weights = resolve_weights(weights)
    if weights == "imagenet":
        weights = find_weights(name, image_size=image_size, alpha=alpha,
                               weights_dir=weights_dir) or _download(spec, image_size, alpha,
                                                                      weights_dir)
    model = _construct(spec, image_size, weights, alpha)
    model.trainable = False
    return model, weights


def _download(spec, image_size, alpha, weights_dir):
    """Lets Keras download the ImageNet file into its cache; returns the file, or raises.

    Keras's "Downloading data from ..." line is shown only when the download works, so that a
    refusal stays one line.
    """
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            _construct(spec, image_size, "imagenet", alpha)
    except BackboneError as err:
        files = keras_weight_files(spec.name, image_size=image_size, alpha=alpha)
        places = " and ".join(([f"--weights-dir {weights_dir}"] if weights_dir else [])
                              + [f"Keras's cache {keras_cache_dir()}"])
        reason = str(err.__cause__ or err).rsplit(" -- ", 1)[-1].strip()
        raise BackboneError(
            f"no ImageNet weights for {spec.name} (alpha {alpha or 1.0}, {image_size} px): "
            f"looked for {' or '.join(files)} in {places}, and Keras could not download it "
            f"({reason}); pass --weights-dir DIR holding that file (or put it in Keras's "
            "cache), or --weights none for random weights on purpose") from err
    sys.stdout.write(said.getvalue())
    return find_weights(spec.name, image_size=image_size, alpha=alpha) or "imagenet"


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
        with warnings.catch_warnings(), _local_copy(weights) as local:
            warnings.simplefilter("ignore", UserWarning)
            return constructor(**{**kwargs, "weights": local})
    except Exception as err:  # Keras raises many types here; turn them into one line
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if weights == "imagenet":
            raise BackboneError(f"could not get ImageNet weights for {spec.name} (Keras needs "
                                f"network access to download them): {first_line}") from err
        if weights is not None:
            raise BackboneError(f"weights file {os.fspath(weights)!r} does not fit backbone "
                                f"{spec.name} (alpha={alpha}): {first_line}") from err
        raise BackboneError(f"cannot build {spec.name}: {first_line}") from err


@contextlib.contextmanager
def _local_copy(weights):
    """Yields `weights` itself, or a local temporary copy of a remote (`gs://`) file."""
    if weights in (None, "imagenet") or "://" not in str(weights):
        yield weights
        return
    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, posixpath.basename(weights))
        tf.io.gfile.copy(weights, local)
        yield local


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
        weights_dir: as in `build_backbone`. Defaults to None.

    Attributes:
        weights_used: the weights file actually loaded (None: random weights).
        embedding_dim: the embedding size.

    Example:
        >>> embed = Embedder("mobilenet_v2", image_size=96, weights=None, alpha=0.35)
        >>> vectors = embed(images)  # (n, 96, 96, 3) in [0, 255] -> (n, 1280)
    """

    def __init__(self, name, *, image_size=None, weights="imagenet", alpha=None,
                 weights_dir=None):
        self.model, self.weights_used = build_backbone(name, image_size=image_size,
                                                       weights=weights, alpha=alpha,
                                                       weights_dir=weights_dir)
        self.embedding_dim = int(self.model.output_shape[-1])
        preprocess = Preprocess(name)
        side = self.model.input_shape[1]
        self._forward = tf.function(
            lambda images: self.model(preprocess(images), training=False),
            input_signature=[tf.TensorSpec((None, side, side, 3), tf.float32)])

    def __call__(self, images):
        """Embeds a float32 batch (n, size, size, 3) in [0, 255]; returns float32 (n, dim)."""
        return self._forward(tf.convert_to_tensor(images, tf.float32)).numpy()
