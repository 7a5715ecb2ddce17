"""`open_model`: what the driver learns of a model before any work, or one line why not."""
import json
import os
import posixpath
import shutil
import uuid

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.features import cache
from pipeline.prediction.models import LABELS, SAVED_MODEL, load_predictor, open_model
from pipeline.training.heads import load_head
from pipeline.training.end_to_end import MODEL_FILE, MODEL_INFO, load_finetuned


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
    (copy / "published.json").unlink()  # edited by hand: no longer the published folder
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


def _in_memory(local_dir):
    """A copy of a local folder on TensorFlow's `ram://` file system: a path that only
    `tf.io.gfile` reads (no `open()`, no `os.path`), as `gs://` is."""
    root = f"ram://models-{uuid.uuid4().hex}"
    for folder, _, names in os.walk(local_dir):
        relative = os.path.relpath(folder, local_dir)
        target = root if relative == "." else posixpath.join(root, relative)
        tf.io.gfile.makedirs(target)
        for name in names:
            tf.io.gfile.copy(os.path.join(folder, name), posixpath.join(target, name))
    return root


@pytest.fixture
def finetuned(tmp_path):
    """A tiny `model.keras` with its `model.json`, as jobs.finetune writes them."""
    images = keras.Input((8, 8, 3))
    model = keras.Model(images, keras.layers.Dense(1)(
        keras.layers.GlobalAveragePooling2D()(images)))
    model.save(tmp_path / MODEL_FILE)
    (tmp_path / MODEL_INFO).write_text(json.dumps(
        {"class_names": ["a", "b"], "image_size": 8, "embed_config": {"face_crop": False}}))
    return str(tmp_path)


def test_a_finetuned_model_on_another_file_system_is_opened_and_loaded(finetuned):
    remote = _in_memory(finetuned)
    spec = open_model(remote + "/")
    assert (spec.kind, spec.path, spec.class_names, spec.image_size) == (
        "finetuned", f"{remote}/{MODEL_FILE}", ("a", "b"), 8)
    assert spec.digest == open_model(finetuned).digest  # the content, not the place
    model, info = load_finetuned(remote)
    assert model.output_shape == (None, 1) and info["class_names"] == ["a", "b"]
    proba, _, _ = load_predictor(spec)(np.zeros((2, 8, 8, 3), np.float32), ["x", "y"])
    assert proba.shape == (2, 2)


def test_an_export_folder_on_another_file_system_is_opened_and_loaded(tmp_path):
    class Serving(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, 8, 8, 3), tf.float32)])
        def serve(self, images):
            return {"probabilities": tf.nn.softmax(tf.reduce_mean(images, [1, 2])[:, :2])}

    module = Serving()
    tf.saved_model.save(module, str(tmp_path / SAVED_MODEL),
                        signatures={"serving_images": module.serve})
    (tmp_path / LABELS).write_text("a\nb\n")
    spec = open_model(_in_memory(tmp_path))
    assert (spec.kind, spec.class_names, spec.image_size, spec.face_crop) == (
        "saved_model", ("a", "b"), 8, False)
    proba, _, _ = load_predictor(spec)(np.zeros((1, 8, 8, 3), np.float32), ["x"])
    assert proba.shape == (1, 2)


def test_a_head_folder_on_another_file_system_is_opened_and_loaded(tiny_head):
    spec = open_model(_in_memory(tiny_head))
    assert spec.kind == "head" and spec.digest == open_model(tiny_head).digest
    remote, local = load_head(spec.path), load_head(tiny_head)
    embeddings = cache.load_split(local.meta["cache_dir"], "val", clean_only=True).embeddings
    np.testing.assert_allclose(remote.predict_proba(embeddings), local.predict_proba(embeddings),
                               atol=1e-6)


def test_a_file_inside_a_head_folder_is_refused_with_the_folder_to_pass(tiny_head):
    with pytest.raises(ValueError, match=f"is a file of the head in {tiny_head}: pass the "
                                         f"folder {tiny_head}$"):
        open_model(f"{tiny_head}/head.keras")


def test_a_truncated_or_missing_file_of_a_published_model_is_refused_in_one_line(tiny_head,
                                                                              tmp_path):
    head = shutil.copytree(tiny_head, tmp_path / "head")
    assert open_model(str(head)).kind == "head"
    weights = head / "head.keras"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"head\.keras: damaged \(not the file jobs.train_head "
                                         r"published\); run the job again"):
        open_model(str(head))
    weights.unlink()
    with pytest.raises(ValueError, match=r"head\.keras: missing from the published output"):
        open_model(str(head))


def test_a_truncated_model_keras_of_a_published_fine_tune_is_refused_in_one_line(finetuned):
    from pipeline.publish import published_folder

    out = finetuned + "-published"
    with published_folder(out, job="finetune") as staging:
        for name in os.listdir(finetuned):
            shutil.copy(os.path.join(finetuned, name), staging)
    assert open_model(out).kind == "finetuned"
    model_file = os.path.join(out, MODEL_FILE)
    with open(model_file, "r+b") as handle:
        handle.truncate(os.path.getsize(model_file) // 2)  # a kill while it was copied
    with pytest.raises(ValueError, match=r"model\.keras: damaged \(not the file jobs\.finetune"):
        open_model(out)
    with pytest.raises(ValueError, match=r"model\.keras: damaged"):
        load_finetuned(out)
