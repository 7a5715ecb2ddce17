"""The augmentation recipe: random in the fine-tune model, deterministic in the feature cache.

Both uses are built from the same Keras preprocessing layers (`build_augmenter`), so the cached
copies are draws from exactly the distribution the fine-tune model trains on. Cached copy `k` of an
example is fixed by `(seed, example id, k)`: identical on every run and every worker.
"""
import dataclasses
import hashlib

import numpy as np

from pipeline.validation import check_choice, check_scalar

__all__ = ["AugmentConfig", "parse_augment", "build_augmenter", "CopyAugmenter", "copy_seed",
           "mixup_batches"]

_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Which augmentation ops run, and how strongly (Keras layer factors).

    The defaults are the seeds' recipe: horizontal flip, rotation 0.1, zoom 0.1, contrast 0.1.

    Attributes:
        flip: `"horizontal"`, `"vertical"`, `"horizontal_and_vertical"` or None.
        rotation: `RandomRotation` factor (fraction of a full turn). 0 disables it.
        zoom: `RandomZoom` factor. 0 disables it.
        contrast: `RandomContrast` factor. 0 disables it.
        translation: `RandomTranslation` factor for height and width. 0 disables it.
        brightness: `RandomBrightness` factor. 0 disables it.
        height: vertical-only `RandomZoom` factor (stretches the height). 0 disables it.
        width: horizontal-only `RandomZoom` factor (stretches the width). 0 disables it.
    """

    flip: str | None = "horizontal"
    rotation: float = 0.1
    zoom: float = 0.1
    contrast: float = 0.1
    translation: float = 0.0
    brightness: float = 0.0
    height: float = 0.0
    width: float = 0.0

    def __post_init__(self):
        if self.flip is not None:
            check_choice(self.flip, "flip", _FLIP_MODES)
        for field in dataclasses.fields(self):
            if field.name != "flip":
                value = float(check_scalar(getattr(self, field.name), field.name, (int, float),
                                           min_val=0.0, max_val=1.0))
                object.__setattr__(self, field.name, value)

    @classmethod
    def none(cls):
        """A config with every op disabled."""
        return cls(flip=None, rotation=0.0, zoom=0.0, contrast=0.0)


def parse_augment(spec):
    """Parses a command-line spec such as `"flip=horizontal,rotation=0.1,zoom=0.1"`.

    `"default"` is the seeds' recipe and `"none"` disables augmentation; otherwise only the ops
    named are enabled.

    Raises:
        ValueError: an unknown op or a bad value, naming it.
    """
    spec = spec.strip()
    if spec == "default":
        return AugmentConfig()
    if spec == "none":
        return AugmentConfig.none()
    names = [f.name for f in dataclasses.fields(AugmentConfig)]
    values = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, value = item.partition("=")
        check_choice(name, "augment op", names)
        if not sep:
            raise ValueError(f"augment op {name!r}: expected {name}=VALUE; got {item!r}")
        values[name] = value if name == "flip" else _parse_float(name, value)
    return dataclasses.replace(AugmentConfig.none(), **values)


def _parse_float(name, value):
    try:
        return float(value)
    except ValueError as err:
        raise ValueError(f"augment op {name!r}: expected a number; got {value!r}") from err


def build_augmenter(config):
    """Builds the list of Keras preprocessing layers for `config`, in application order.

    Args:
        config: an `AugmentConfig`.

    Returns:
        A list of Keras layers (empty when everything is disabled). Wrap it in
        `keras.Sequential` for a model; pass it to `augment_copy` for deterministic copies.
    """
    from keras import layers  # deferred: Keras is heavy to import

    ops = []
    if config.flip:
        ops.append(layers.RandomFlip(config.flip))
    if config.rotation:
        ops.append(layers.RandomRotation(config.rotation))
    if config.zoom:
        ops.append(layers.RandomZoom(config.zoom))
    if config.translation:
        ops.append(layers.RandomTranslation(config.translation, config.translation))
    if config.height:
        ops.append(layers.RandomZoom(height_factor=config.height, width_factor=0.0))
    if config.width:
        ops.append(layers.RandomZoom(height_factor=0.0, width_factor=config.width))
    if config.contrast:
        ops.append(layers.RandomContrast(config.contrast))
    if config.brightness:
        ops.append(layers.RandomBrightness(config.brightness))
    return ops


def copy_seed(seed, example_id, copy, op_index):
    """The integer seed of op `op_index` for augmented copy `copy` of `example_id` (never 0)."""
    key = f"{seed}\x00{example_id}\x00{copy}\x00{op_index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % (2**31 - 1) + 1


class CopyAugmenter:
    """Makes deterministic augmented copies with the layers of `build_augmenter`.

    Copy `k` of an example is fixed by `(seed, example id, k)`: every op draws from a Keras
    `SeedGenerator` whose state is set from `copy_seed` before the op runs, inside one compiled
    `tf.function`, so copies are identical on every run and every worker, and fast.

    Args:
        config: an `AugmentConfig`.
        seed: the job's seed.

    Example:
        >>> augment = CopyAugmenter(AugmentConfig(), seed=123)
        >>> copy = augment(image, example_id="smiling/a.jpg", copy=1)
    """

    def __init__(self, config, *, seed):
        import keras  # deferred: Keras is heavy to import
        import tensorflow as tf

        self._seed = seed
        self._layers = build_augmenter(config)
        self._generators = [keras.random.SeedGenerator(1) for _ in self._layers]
        self._apply = tf.function(self._apply_eager, reduce_retracing=True)

    def _apply_eager(self, image, seeds):
        import tensorflow as tf

        batch = image[None]
        for index, (layer, generator) in enumerate(zip(self._layers, self._generators)):
            state = tf.stack([seeds[index], tf.constant(0, seeds.dtype)])
            generator.state.assign(tf.cast(state, generator.state.dtype))
            transform = layer.get_random_transformation(batch, training=True, seed=generator)
            batch = layer.transform_images(batch, transform, training=True)
        return batch[0]

    def __call__(self, image, *, example_id, copy):
        """Returns augmented copy `copy` (1..K) of `image`, a float32 (height, width, 3) array."""
        image = np.asarray(image, dtype=np.float32)
        if not self._layers:
            return image
        seeds = np.array([copy_seed(self._seed, example_id, copy, index)
                          for index in range(len(self._layers))], dtype=np.int64)
        return np.asarray(self._apply(image, seeds), dtype=np.float32)


def mixup_batches(batches, *, alpha, seed):
    """Mixes each example of a batched `(x, float targets)` dataset with another of its batch
    (mixup: Zhang et al., 2018): both by a weight drawn per example from Beta(alpha, alpha).

    The partner is the example at the mirrored position of the batch; the weights are keyed by
    `(seed, batch index)`, so a shuffled input gives new pairs each epoch, deterministically.
    """
    import tensorflow as tf

    def mix(index, pair):
        x, y = pair
        n = tf.shape(x)[0]
        key = tf.stack([tf.cast(seed, tf.int64), index])
        g1 = tf.random.stateless_gamma([n, 1], key, alpha)
        g2 = tf.random.stateless_gamma([n, 1], key + 1, alpha)
        weight = g1 / (g1 + g2)
        x_weight = tf.reshape(weight, tf.concat([[n], tf.ones([tf.rank(x) - 1], tf.int32)], 0))
        return (x_weight * x + (1 - x_weight) * tf.reverse(x, [0]),
                weight * y + (1 - weight) * tf.reverse(y, [0]))

    return batches.enumerate().map(mix, num_parallel_calls=tf.data.AUTOTUNE)
