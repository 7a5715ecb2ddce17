"""`open_model`: what the driver learns of a model before any work, or one line why not."""
import shutil

import pytest

from pipeline.prediction.models import load_predictor, open_model


def test_a_head_folder_is_described_from_its_files(tiny_head, tiny_cache):
    spec = open_model(tiny_head + "/")
    assert (spec.kind, spec.path, spec.image_size, spec.face_crop, spec.mirror) == (
        "head", tiny_head, 48, False, False)
    assert spec.class_names == tuple(tiny_cache.manifest["class_names"]) and spec.has_embeddings
    assert open_model(tiny_head).digest == spec.digest


def test_a_changed_head_has_another_digest(tiny_head, tmp_path):
    copy = shutil.copytree(tiny_head, tmp_path / "head")
    same = open_model(str(copy)).digest
    assert same == open_model(tiny_head).digest  # the content, not the place
    (copy / "head.json").write_text((copy / "head.json").read_text() + " ")
    assert open_model(str(copy)).digest != same


def test_one_predictor_per_model_and_options(tiny_head):
    spec = open_model(tiny_head)
    assert load_predictor(spec) is load_predictor(spec)
    assert load_predictor(spec, with_embeddings=True) is not load_predictor(spec)


def test_what_is_no_model_is_refused_in_one_line(tmp_path, faces):
    with pytest.raises(ValueError, match="expected a model.keras from jobs.finetune, a head "
                                         "folder from jobs.train_head, or a folder from"):
        open_model(faces)
    (tmp_path / "head.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read"):
        open_model(str(tmp_path))
