"""The backbone registry: names, their `keras.applications` constructors, native sizes and
widths, and Keras's file names of their ImageNet weights. No TensorFlow here, so a command line
(choices, defaults) and a config can be made without importing it; `pipeline.features.backbones`
builds the models.
"""
import dataclasses

from pipeline.validation import check_choice

__all__ = ["BackboneSpec", "BACKBONES", "DEFAULT_BACKBONE", "get_spec", "keras_weight_files"]


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone.

    Attributes:
        name: the registry name.
        constructor: the `keras.applications` attribute name, e.g. `"MobileNetV2"`.
        module: the `keras.applications` module holding its `preprocess_input`.
        default_size: its native input side in pixels.
        has_alpha: whether it takes a width multiplier `alpha`.
        default_alpha: the width built when none is asked; None: Keras's own (1.0), or none.
            MobileNetV2's is 0.5, the project's default backbone (chosen by
            `bench/backbones.py`).
    """

    name: str
    constructor: str
    module: str
    default_size: int
    has_alpha: bool = False
    default_alpha: float | None = None


BACKBONES = {spec.name: spec for spec in (
    BackboneSpec("mobilenet", "MobileNet", "mobilenet", 224, has_alpha=True),
    BackboneSpec("mobilenet_v2", "MobileNetV2", "mobilenet_v2", 224, has_alpha=True,
                 default_alpha=0.5),
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

#: The project's default backbone (`EmbedConfig`'s and the quickstart's).
DEFAULT_BACKBONE = "mobilenet_v2"


def get_spec(name):
    """Returns the `BackboneSpec` of `name`, or raises `ValueError` listing the valid names."""
    return BACKBONES[check_choice(name, "backbone", BACKBONES)]


#: Keras's own no-top weight file names: `(template, sizes with their own file)`. A template's
#: `{alpha}` is Keras's spelling of the width, `{size}` the input side; without sizes of its own,
#: a backbone has one file for every size.
_KERAS_FILES = {
    "mobilenet": ("mobilenet_{alpha}_{size}_tf_no_top.h5", (128, 160, 192, 224)),
    "mobilenet_v2": ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{size}_no_top.h5",
                     (96, 128, 160, 192, 224)),
    "mobilenet_v3_small": ("weights_mobilenet_v3_small_224_{alpha}_float_no_top_v2.h5", ()),
    "mobilenet_v3_large": ("weights_mobilenet_v3_large_224_{alpha}_float_no_top_v2.h5", ()),
    **{f"efficientnet_b{i}": (f"efficientnetb{i}_notop.h5", ()) for i in range(4)},
    **{f"efficientnet_v2_b{i}": (f"efficientnetv2-b{i}_notop.h5", ()) for i in range(3)},
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", ()),
    "resnet50_v2": ("resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5", ()),
    "inception_v3": ("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", ()),
    "xception": ("xception_weights_tf_dim_ordering_tf_kernels_notop.h5", ()),
    "densenet121": ("densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5", ()),
    "convnext_tiny": ("convnext_tiny_notop.h5", ()),
}

#: MobileNet v1 spells its widths this way in file names.
_MOBILENET_ALPHAS = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}


def keras_weight_files(name, *, image_size=None, alpha=None):
    """Keras's file names of a backbone's no-top ImageNet weights, best first.

    The file made for `image_size` comes first where Keras publishes one per size; the 224-px
    file follows, because a no-top file loads at any input size.

    Args:
        name: a registry name.
        image_size: input side. Defaults to the backbone's own.
        alpha: width multiplier. Defaults to Keras's 1.0.

    Returns:
        A tuple of file names, e.g. `("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_96_
        no_top.h5", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5")`.
    """
    spec = get_spec(name)
    template, sizes = _KERAS_FILES[spec.name]
    width = 1.0 if alpha is None else float(alpha)
    spelled = _MOBILENET_ALPHAS.get(width, str(width)) if spec.name == "mobilenet" else str(width)
    side = spec.default_size if image_size is None else image_size
    candidates = [side, 224] if side in sizes else [224]
    return tuple(dict.fromkeys(template.format(alpha=spelled, size=s) for s in candidates))
