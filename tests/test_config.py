import dataclasses

import numpy as np
import pytest

from jobs import embed as embed_job
from pipeline.data.augment import AugmentConfig
from pipeline.data.images import probe_image_size
from pipeline.features.config import EmbedConfig, cache_key
from pipeline.features.registry import DEFAULT_BACKBONE, get_spec

BASE = EmbedConfig(data="data", backbone="mobilenet_v2", alpha=0.35, image_size=96,
                   weights=None, face_crop=False)


def _key(config, data="fp", weights="none"):
    return cache_key(config, data_fingerprint=data, weights_digest=weights)


@pytest.mark.parametrize("change", [
    {"backbone": "mobilenet"}, {"alpha": 0.5}, {"image_size": 128},
    {"augment": AugmentConfig(rotation=0.2)}, {"augment_copies": 3}, {"val_fraction": 0.3},
    {"seed": 124}, {"face_crop": True},
])
def test_key_changes_with_every_input(change):
    assert _key(dataclasses.replace(BASE, **change)) != _key(BASE)


def test_key_changes_with_data_and_weights():
    assert _key(BASE, data="other") != _key(BASE)
    assert _key(BASE, weights="sha256:abc") != _key(BASE)


@pytest.mark.parametrize("change", [{"cache_root": "elsewhere"}, {"batch_size": 7},
                                    {"num_shards": 3}, {"data": "moved/data"}])
def test_key_ignores_what_does_not_change_embeddings(change):
    assert _key(dataclasses.replace(BASE, **change)) == _key(BASE)


@pytest.mark.parametrize("field", ["face_crop", "image_size"])
def test_auto_fields_are_decided_before_a_key_is_made(field):
    with pytest.raises(ValueError, match=f"{field} 'auto' is decided on the data"):
        _key(dataclasses.replace(BASE, **{field: "auto"}))


def test_bad_auto_fields_are_refused():
    with pytest.raises(ValueError, match="face_crop: expected True, False or 'auto'"):
        dataclasses.replace(BASE, face_crop="yes")
    with pytest.raises(ValueError, match="image_size"):
        dataclasses.replace(BASE, image_size="big")


def test_image_size_is_auto_by_default_and_none_is_the_backbone_size():
    assert EmbedConfig(data="d").image_size == "auto"
    assert EmbedConfig(data="d", backbone="efficientnet_b2", image_size=None).image_size == 260


def test_dict_round_trip():
    assert EmbedConfig.from_dict(BASE.to_dict()) == BASE


@pytest.mark.parametrize("change, message", [
    ({"augment_copies": -1}, "augment_copies"), ({"seed": -3}, "seed"),
    ({"image_size": 10}, "image_size"), ({"backbone": "vgg"}, "backbone"),
])
def test_bad_values_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BASE, **change)


def test_the_embed_help_states_the_image_sizes_auto_picks_for_the_default_backbone():
    native = get_spec(DEFAULT_BACKBONE).default_size
    small, large = (probe_image_size([np.zeros((side, side, 3))], native)["image_size"]
                    for side in (native, 2 * native))
    assert " ".join(embed_job.build_parser().format_help().split()).count(
        f"image size from the data: {small} px, or {large} px where the sampled images are "
        "larger") == 1
