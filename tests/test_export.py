import hashlib
import json
import os
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from jobs import embed, export, finetune, train_head
from pipeline.data.images import load_image
from pipeline.evaluation.export import _logistic_as_dense, tflite_probabilities
from pipeline.features import cache
from pipeline.prediction.models import load_predictor, open_model
from pipeline.training.heads import load_head, logits_to_proba
from tests.conftest import IN_MEMORY


@pytest.fixture(scope="module")
def tuned(tiny_cache, tiny_head, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    finetune.run(["--cache", tiny_cache.cache_dir, "--head", tiny_head, "--out",
                  str(root / "tuned"), "--epochs", "1", "--batch-size", "8"])
    return root / "tuned" / "model.keras", root


def _images(faces):
    files = sorted(pathlib.Path(faces).glob("*/*.jpg"))[::3]
    return [f.read_bytes() for f in files]


def _export_info(source, model, backbone, mirror=False):
    return {"source": source, "model": model, "class_names": ["neutral", "smiling"],
            "image_size": 48, "face_crop": False, "backbone": backbone, "mirror": mirror}


def test_saved_model_and_tflite_match_the_keras_model(tuned, faces):
    model_path, root = tuned
    paths = export.run(["--model", str(model_path), "--out", str(root / "exported"), "--int8"])
    encoded = _images(faces)
    images = np.stack([load_image(data, 48) for data in encoded])
    expected = logits_to_proba(keras.models.load_model(model_path).predict(images, verbose=0), 2)
    served = tf.saved_model.load(paths["saved_model"]).signatures["serving_default"](
        image_bytes=tf.constant(encoded))
    assert np.abs(served["probabilities"].numpy() - expected).max() < 1e-4
    assert served["class_names"].numpy()[0].tolist() == [b"neutral", b"smiling"]
    assert np.abs(tflite_probabilities(paths["tflite"], images) - expected).max() < 1e-4
    int8 = tflite_probabilities(paths["tflite_int8"], images)
    assert int8.shape == expected.shape and np.abs(int8 - expected).max() < 0.5
    assert open(paths["labels"]).read().split() == ["neutral", "smiling"]
    info = json.loads(pathlib.Path(paths["export"]).read_text())
    # the job's ensemble, each member averaged over the mirror (the default augmentation's)
    assert info == _export_info("finetuned", str(model_path), "mobilenet_v2", mirror=True)


def test_face_crop_models_crop_in_the_graph_with_the_boxes_given(tuned, faces, tmp_path):
    import shutil

    from pipeline.data.images import decode_image, resize_image

    model_path, _ = tuned
    copy = tmp_path / "model"
    shutil.copytree(model_path.parent, copy, ignore=shutil.ignore_patterns("backup"))
    info = json.loads((copy / "model.json").read_text())
    info["embed_config"]["face_crop"] = True
    (copy / "model.json").write_text(json.dumps(info))
    (copy / "published.json").unlink()  # edited by hand: no longer the published folder
    paths = export.run(["--model", str(copy / "model.keras"), "--out", str(tmp_path / "out")])
    encoded = _images(faces)[:4]
    boxes = np.array([[4, 6, 40, 44], [-1, -1, -1, -1], [0, 0, 48, 24], [10, 10, 30, 30]],
                     np.int32)
    crops = [image if top < 0 else image[top:bottom, left:right]
             for image, (top, left, bottom, right) in zip(map(decode_image, encoded), boxes)]
    images = np.stack([resize_image(crop, 48) for crop in crops])
    expected = logits_to_proba(keras.models.load_model(model_path).predict(images, verbose=0), 2)
    served = tf.saved_model.load(paths["saved_model"]).signatures["serving_default"](
        image_bytes=tf.constant(encoded), face_boxes=tf.constant(boxes))
    assert np.abs(served["probabilities"].numpy() - expected).max() < 1e-4
    spec = json.loads(open(paths["face_crop"]).read())
    assert spec["margin"] == 0.25 and spec["reference"] == "pipeline.data.faces.face_box"


@pytest.fixture(scope="module")
def heads(faces, mobilenet_weights, tmp_path_factory):
    """A dense and a logistic head on real MobileNet 0.25 embeddings (random ones are ~0)."""
    root = tmp_path_factory.mktemp("export_heads")
    result = embed.run(["--data", faces, "--cache-dir", str(root / "cache"), "--backbone",
                        "mobilenet", "--alpha", "0.25", "--image-size", "48", "--weights",
                        mobilenet_weights, "--no-face-crop", "--augment-copies", "0",
                        *IN_MEMORY])
    for kind in ("dense", "logistic"):
        train_head.run(["--cache", result.cache_dir, "--out", str(root / kind), "--quiet",
                        "--head", kind, "--epochs", "20", "--ensemble", "1", "--epoch-folds",
                        "0"])
    return root, result.cache_dir


@pytest.mark.parametrize("kind", ["dense", "logistic"])
def test_exported_heads_match_the_head_on_its_cache_embeddings(heads, kind, tmp_path):
    root, cache_dir = heads
    head_dir = str(root / kind)
    paths = export.run(["--model", head_dir, "--out", str(tmp_path / "exported")])
    manifest = cache.read_manifest(cache_dir)
    clean = cache.load_split(cache_dir, "train", clean_only=True)
    ids, embeddings = clean.ids[::2], clean.embeddings[::2]
    encoded = [pathlib.Path(manifest["source"]["root"], i).read_bytes() for i in ids]
    images = np.stack([load_image(data, 48) for data in encoded])
    expected = load_head(head_dir).predict_proba(embeddings)
    assert expected.shape == (len(ids), 2) and expected[:, 1].std() > 1e-3
    served = tf.saved_model.load(paths["saved_model"]).signatures["serving_default"](
        image_bytes=tf.constant(encoded))
    assert np.abs(served["probabilities"].numpy() - expected).max() < 1e-4
    assert served["class_names"].numpy()[0].tolist() == [b"neutral", b"smiling"]
    assert np.abs(tflite_probabilities(paths["tflite"], images) - expected).max() < 1e-4
    predicted, _, _ = load_predictor(open_model(head_dir))(
        images, [hashlib.sha256(data).hexdigest() for data in encoded])
    assert np.abs(served["probabilities"].numpy() - predicted).max() < 1e-4
    info = json.loads(pathlib.Path(paths["export"]).read_text())
    assert info == _export_info("head", head_dir, "mobilenet")
    assert sorted(os.listdir(tmp_path / "exported")) == ["export.json", "labels.txt",
                                                         "model.tflite", "published.json",
                                                         "saved_model"]


def test_heads_on_random_weights_export_too(tiny_head, tmp_path):
    head_dir = tiny_head
    paths = export.run(["--model", head_dir, "--out", str(tmp_path / "exported")])
    info = json.loads(pathlib.Path(paths["export"]).read_text())
    assert info == _export_info("head", head_dir, "mobilenet_v2")
    assert not os.path.exists(tmp_path / "exported" / "face_crop.json")
    cache_dir = load_head(head_dir).meta["cache_dir"]
    clean = cache.load_split(cache_dir, "val", clean_only=True)
    root_dir = cache.read_manifest(cache_dir)["source"]["root"]
    encoded = [pathlib.Path(root_dir, i).read_bytes() for i in clean.ids]
    served = tf.saved_model.load(paths["saved_model"]).signatures["serving_default"](
        image_bytes=tf.constant(encoded))
    expected = load_head(head_dir).predict_proba(clean.embeddings)
    assert np.abs(served["probabilities"].numpy() - expected).max() < 1e-4


def test_a_second_export_into_one_folder_replaces_the_first_whole(tuned, tiny_head, tmp_path):
    out = str(tmp_path / "exported")
    export.run(["--model", str(tuned[0]), "--out", out, "--int8"])
    paths = export.run(["--model", tiny_head, "--out", out])
    assert not os.path.exists(os.path.join(out, "model_int8.tflite"))  # not the first's
    assert json.loads(pathlib.Path(paths["export"]).read_text())["source"] == "head"
    assert open_model(out).digest  # whole, and readable as a model


def test_an_export_into_a_folder_of_other_files_is_refused_before_any_work(tiny_head, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="not an output of jobs.export"):
        export.run(["--model", tiny_head, "--out", str(tmp_path / "photos")])
    assert os.listdir(tmp_path / "photos") == ["cat.jpg"]


@pytest.mark.parametrize("num_classes", [2, 3])
def test_logistic_heads_become_an_exact_dense_layer(num_classes):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, rng.uniform(0.1, 5.0, 8), (90, 8)).astype(np.float32)
    y = np.arange(90) % num_classes
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(x, y)
    kernel, bias = _logistic_as_dense(model, num_classes, "head")
    logits = x @ kernel + bias
    assert kernel.shape == (8, 1 if num_classes == 2 else 3)
    assert np.abs(logits_to_proba(logits, num_classes) - model.predict_proba(x)).max() < 1e-5
    with pytest.raises(ValueError, match="'other': .* only dense heads"):
        _logistic_as_dense(make_pipeline(PCA(2), LogisticRegression()).fit(x, y), num_classes,
                           "other")
