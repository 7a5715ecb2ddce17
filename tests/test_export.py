import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from jobs import embed, export, finetune, train_head
from pipeline.data.images import load_image
from pipeline.evaluation.export import tflite_probabilities
from pipeline.training.heads import logits_to_proba
from tests.conftest import IN_MEMORY, TINY


@pytest.fixture(scope="module")
def tuned(faces, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    result = embed.run(["--data", faces, "--cache-dir", str(root / "cache"), *TINY,
                        "--augment-copies", "0", *IN_MEMORY])
    train_head.run(["--cache", result.cache_dir, "--out", str(root / "head"), "--quiet",
                    "--epochs", "3"])
    finetune.run(["--cache", result.cache_dir, "--head", str(root / "head"), "--out",
                  str(root / "tuned"), "--epochs", "1", "--batch-size", "8"])
    return root / "tuned" / "model.keras", root


def _images(faces):
    import pathlib

    files = sorted(pathlib.Path(faces).glob("*/*.jpg"))[::3]
    return [f.read_bytes() for f in files]


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


def test_face_crop_models_crop_in_the_graph_with_the_boxes_given(tuned, faces, tmp_path):
    import shutil

    from pipeline.data.images import decode_image, resize_image

    model_path, _ = tuned
    copy = tmp_path / "model"
    shutil.copytree(model_path.parent, copy, ignore=shutil.ignore_patterns("backup"))
    info = json.loads((copy / "model.json").read_text())
    info["embed_config"]["face_crop"] = True
    (copy / "model.json").write_text(json.dumps(info))
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
