"""The typed, frozen configuration of the embed job, and the cache key derived from it.

Configuration flows one way: command line -> `EmbedConfig` -> keyword arguments. The same object,
as `to_dict()`, is written into every manifest and report.
"""
import dataclasses
import hashlib
import json

from pipeline.data.augment import AugmentConfig, parse_augment
from pipeline.data.faces import FACE_SHARE
from pipeline.data.links import follow_links_field
from pipeline.features.registry import BACKBONES, DEFAULT_BACKBONE, get_spec
from pipeline.fields import check_choices, field
from pipeline.validation import check_scalar

__all__ = ["FORMAT_VERSION", "DATA_PROBE_IMAGES", "EmbedConfig", "cache_key", "config_key"]

#: Version of the cache layout; bump it when records or the manifest change incompatibly.
FORMAT_VERSION = 3

#: Images sampled to decide `image_size` and `face_crop` "auto" before any work.
DATA_PROBE_IMAGES = 64


def _weights(value):
    return None if value.lower() == "none" else value


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    """Everything that decides what the embed job computes, plus where it writes.

    Attributes:
        data: a class-folder root, a labelled `.csv` list, a glob or `tfds:NAME`
            (`pipeline.data.sources.open_source`).
        backbone: registry name. Defaults to `"mobilenet_v2"`.
        alpha: width multiplier; None: Keras's default (1.0), or a backbone without one.
            `"auto"` is the backbone's default width (`BackboneSpec.default_alpha`: 0.5 for
            MobileNetV2, the default backbone, chosen by `bench/backbones.py`; None for the
            others), resolved at once. Defaults to `"auto"`.
        weights: `"imagenet"` (`"auto"` is the same), a weights file, or None (random, on
            purpose). Defaults to `"imagenet"`.
        weights_dir: a folder of Keras weight files under their own names (local or `gs://`),
            searched before Keras's cache; where to look, so not part of the key (the weights
            file's content is). Defaults to `None`.
        image_size: input side in pixels; None means the backbone's own size. `"auto"`
            decides before any work, on a sample of the data: the backbone's own size, or 1.25x
            it (to a multiple of 32) where the images' median shorter side is larger than it
            (`pipeline.data.images.probe_image_size`; TFDS data keeps the backbone's own); the
            cache's config holds the decision. Defaults to `"auto"`.
        augment: the augmentation recipe. Defaults to flip, rotation 0.1, zoom 0.1, contrast 0.1.
        augment_copies: augmented copies per training image (K). Defaults to `2`.
        val_fraction: fraction of examples hashed into validation (TFDS: of its training split
            where it has no validation split). Defaults to `0.2`.
        seed: seed of the split and of the augmentations. Defaults to `123`.
        face_crop: crop the largest face (OpenCV Haar cascade) before resizing; images without
            a detected face are kept whole and listed. `"auto"` decides before any work: on
            when a face is found in at least `pipeline.data.faces.FACE_SHARE` of a sample of
            the data (`pipeline.data.faces.probe_faces`), off otherwise (and for TFDS data);
            the cache's config holds the decision. Defaults to `"auto"`.
        follow_links: which symbolic links in a data folder are read
            (`pipeline.data.links`): `"no"` skips every link with a reason, `"inside"` follows
            links that resolve inside the data folder, `"any"` follows all. What is listed is
            part of the data's fingerprint, so not of the key. Defaults to `"no"`.
        cache_root: folder under which `<cache key>/` is written. Defaults to `"cache"`.
        batch_size: backbone batch size (speed only; not part of the key). Defaults to `32`.
        num_shards: TFRecord shards (0: let the runner decide; not part of the key).
            Defaults to `0`.
    """

    data: str = field(help="a class-folder root, a labelled .csv list (path and label columns), "
                      "a glob such as 'DIR/*/*.jpg', or tfds:NAME",
                      metavar="DIR|LIST.csv|GLOB|tfds:NAME")
    backbone: str = field(DEFAULT_BACKBONE, help="backbone name", choices=sorted(BACKBONES),
                          metavar="NAME")
    alpha: float | str | None = field(
        "auto", help="width multiplier; auto: the backbone's default (MobileNetV2: 0.5, the "
        "others: Keras's own)")
    weights: str | None = field("imagenet", parse=_weights, help="imagenet (--weights-dir, "
                                "then Keras's cache, then Keras's download) | none (random, on "
                                "purpose) | PATH")
    weights_dir: str | None = field(None, metavar="DIR", help="folder of Keras weight files "
                                    "under their Keras names (local or gs://), searched first")
    image_size: int | str | None = field(
        "auto", help="input side in pixels; auto: the backbone's own, or 1.25x it (to a "
        f"multiple of 32) where the median shorter side of {DATA_PROBE_IMAGES} sampled images "
        "is larger")
    augment: AugmentConfig = field(
        AugmentConfig(), parse=parse_augment, default_text="default",
        help='"default" (flip, rotation 0.1, zoom 0.1, contrast 0.1), "none", or ops such as '
        '"flip=horizontal,rotation=0.2,brightness=0.1"')
    augment_copies: int = field(2, help="K, augmented copies per training image")
    val_fraction: float = field(0.2, help="share of a folder's images hashed into validation")
    seed: int = field(123, help="seed of the split and of the augmentations")
    face_crop: bool | str = field(
        "auto", default_text="auto", help="crop the largest face (OpenCV Haar cascade) before "
        f"resizing; auto: on where faces are found in at least {FACE_SHARE:.0%} of "
        f"{DATA_PROBE_IMAGES} sampled images")
    follow_links: str = follow_links_field()
    cache_root: str = field("cache", flag="--cache-dir", help="cache root")
    batch_size: int = field(32, help="backbone batch size (speed only)")
    num_shards: int = field(0, help="TFRecord shards; 0: the runner decides")

    def __post_init__(self):
        check_choices(self)
        spec = get_spec(self.backbone)
        if self.alpha == "auto":
            object.__setattr__(self, "alpha", spec.default_alpha)
        if self.image_size is None:
            object.__setattr__(self, "image_size", spec.default_size)
        if isinstance(self.image_size, str) and self.image_size != "auto":
            raise ValueError(f"image_size: expected pixels or 'auto'; got {self.image_size!r}")
        if self.image_size != "auto":
            check_scalar(self.image_size, "image_size", int, min_val=32, max_val=1024)
        if self.alpha is not None:
            check_scalar(self.alpha, "alpha", (int, float), min_val=0.0, include_min=False)
        check_scalar(self.augment_copies, "augment_copies", int, min_val=0, max_val=100)
        check_scalar(self.val_fraction, "val_fraction", float, min_val=0.0, max_val=1.0,
                     include_max=False)
        check_scalar(self.seed, "seed", int, min_val=0)
        check_scalar(self.batch_size, "batch_size", int, min_val=1)
        check_scalar(self.num_shards, "num_shards", int, min_val=0)
        if self.face_crop not in (True, False, "auto"):
            raise ValueError(f"face_crop: expected True, False or 'auto'; got {self.face_crop!r}")

    def to_dict(self):
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Rebuilds a config from `to_dict()` output (as stored in a manifest)."""
        values = dict(values)
        values["augment"] = AugmentConfig(**values["augment"])
        values.setdefault("follow_links", "any")  # made before the field: every link followed
        return cls(**values)


def _keyed(config, weights_digest):
    for name in ("face_crop", "image_size"):
        if getattr(config, name) == "auto":
            raise ValueError(f"{name} 'auto' is decided on the data before a key is made")
    return {
        "format_version": FORMAT_VERSION,
        "backbone": config.backbone,
        "alpha": config.alpha,
        "weights": weights_digest,
        "image_size": config.image_size,
        "augment": dataclasses.asdict(config.augment),
        "augment_copies": config.augment_copies,
        "val_fraction": config.val_fraction,
        "seed": config.seed,
        "face_crop": config.face_crop,
    }


def _digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def config_key(config, *, weights_digest):
    """The digest of everything that decides one image's records, the data aside.

    Two caches with the same config key hold interchangeable records for an image with the same
    id and content, so a later run copies them instead of embedding again.

    Returns:
        A 16-hex-digit string.
    """
    return _digest(_keyed(config, weights_digest))


def cache_key(config, *, data_fingerprint, weights_digest):
    """The cache key: a digest of everything that decides the cached embeddings.

    Data content, backbone, alpha, weights digest, image size, augmentation recipe, K, split
    fraction and seed, face crop, and the format version. Where the cache is written, batch size
    and shard count do not change it.

    Returns:
        A 16-hex-digit string.
    """
    return _digest({**_keyed(config, weights_digest), "data": data_fingerprint})
