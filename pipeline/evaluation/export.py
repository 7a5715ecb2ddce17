"""Export a fine-tuned model or a head for serving: a SavedModel that takes encoded image bytes,
TFLite files, `labels.txt` and `export.json`.

A fine-tuned `model.keras` (from `jobs.finetune`) is exported as it is; a head folder (from
`jobs.train_head`) is first made one Keras model with its cache's backbone (the same weights, input
size and preprocessing as embedded): a dense head's layer is copied after the backbone, and a
logistic head (scikit-learn `StandardScaler` + `LogisticRegression`) becomes the equivalent dense
layer, the standardisation folded into its weights.

The SavedModel's `serving_default` signature decodes (any JPEG/PNG/BMP/GIF, to RGB), resizes
(bilinear, as in training) and runs the model, which applies the backbone's own preprocessing,
returning `probabilities` and `class_names`; `serving_images` takes decoded float images
(n, size, size, 3) in [0, 255]. The TFLite files (float32, and optionally dynamic-range int8) are
converted from `serving_images`, since TFLite has no image decoder.

A model trained on face crops crops too: OpenCV's face detector cannot run inside a TensorFlow
graph, so `serving_default` also takes `face_boxes` (n, 4) int32, each the
`(top, left, bottom, right)` that `pipeline.data.faces.face_box` gives for the decoded image (-1s
where no face was found: the whole image is used, as in training), and crops in the graph before
resizing. `face_crop.json` beside it says how to find the boxes; `serving_images` and the TFLite
files take the crops, resized.

`export.json` says what was exported and how its images are prepared: `source` (`"head"` or
`"finetuned"`), `model` (the path exported), `class_names`, `image_size`, `face_crop`,
`backbone` and `mirror` (the model averages over the image and its mirror itself).
"""
import dataclasses
import json
import os
import posixpath

import keras
import numpy as np
import tensorflow as tf

from pipeline.data.faces import face_crop_spec
from pipeline.features.backbones import Preprocess, build_backbone, manifest_weights
from pipeline.features.cache import read_manifest
from pipeline.prediction.models import EXPORT_INFO, FACE_CROP, LABELS, SAVED_MODEL
from pipeline.publish import check_out_dir, published_folder
from pipeline.training.end_to_end import MODEL_FILE, load_finetuned
from pipeline.training.heads import load_head
from pipeline.training.tta import has_flip_tta

__all__ = ["export_model", "tflite_probabilities", "SAVED_MODEL", "TFLITE", "TFLITE_INT8", "LABELS",
           "FACE_CROP", "EXPORT_INFO"]

TFLITE, TFLITE_INT8 = "model.tflite", "model_int8.tflite"
_HEAD_META = "head.json"


@dataclasses.dataclass(frozen=True)
class _Exportable:
    """A Keras model mapping images in [0, 255] (n, side, side, 3) to logits, and its facts."""

    model: keras.Model
    class_names: list
    image_size: int
    face_crop: bool
    backbone: str
    source: str


def _probabilities(logits, num_classes):
    if num_classes == 2:
        positive = tf.sigmoid(logits[:, 0])
        return tf.stack([1.0 - positive, positive], axis=1)
    return tf.nn.softmax(logits)


def _load_for_export(model_path):
    """Loads a fine-tuned `model.keras` (or its folder), or a head folder, as an `_Exportable`.

    Raises:
        ValueError: neither, or a head that cannot be exported.
    """
    folder = os.fspath(model_path)
    if tf.io.gfile.isdir(folder) and not tf.io.gfile.exists(posixpath.join(folder, MODEL_FILE)):
        if tf.io.gfile.exists(posixpath.join(folder, _HEAD_META)):
            return _load_head_for_export(model_path)
        raise ValueError(f"model {os.fspath(model_path)!r}: expected a model.keras from "
                         "jobs.finetune or a head folder from jobs.train_head")
    model, info = load_finetuned(model_path)
    config = info["embed_config"]
    return _Exportable(model, list(info["class_names"]), int(info["image_size"]),
                       bool(config.get("face_crop")), config["backbone"], "finetuned")


def _load_head_for_export(directory):
    """A head with its cache's backbone before it, as an `_Exportable`."""
    head = load_head(directory)
    if "cache_dir" not in head.meta:
        raise ValueError(f"head {directory!r}: its {_HEAD_META} names no cache_dir (the cache "
                         "it was trained on); export a head written by jobs.train_head")
    manifest = read_manifest(head.meta["cache_dir"])
    config = manifest["config"]
    if head.kind == "dense":
        kernel, bias = head.model.get_layer("head_logits").get_weights()
    else:
        kernel, bias = _logistic_as_dense(head.model, head.num_classes, directory)
    model = _backbone_and_dense(manifest, kernel, bias)
    return _Exportable(model, list(manifest["class_names"]), int(config["image_size"]),
                       bool(config.get("face_crop")), config["backbone"], "head")


def _logistic_as_dense(pipeline, num_classes, directory):
    """The kernel and bias of the dense layer whose logits give a logistic head's probabilities.

    For two classes, one logit whose sigmoid is `predict_proba`'s second column (scikit-learn's
    binary probabilities); otherwise one logit per class, whose softmax is `predict_proba`
    (multinomial). Each `StandardScaler` before the classifier is folded into the weights.

    Args:
        pipeline: the head's scikit-learn model: a `LogisticRegression`, or a pipeline of
            `StandardScaler`s ending with one.
        num_classes: the cache's number of classes.
        directory: the head's folder, for messages.

    Returns:
        `(kernel, bias)`: float32 arrays (dim, logits) and (logits,).

    Raises:
        ValueError: a model with no exact dense form.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    steps = [step for _, step in getattr(pipeline, "steps", [("model", pipeline)])]
    *scalers, classifier = steps
    names = " + ".join(type(step).__name__ for step in steps)
    if not (isinstance(classifier, LogisticRegression)
            and all(isinstance(s, StandardScaler) for s in scalers)):
        raise ValueError(f"head {directory!r}: its scikit-learn model ({names}) has no exact "
                         "dense form; only dense heads and StandardScaler + LogisticRegression "
                         "heads export")
    if classifier.classes_.tolist() != list(range(num_classes)):
        raise ValueError(f"head {directory!r}: its logistic model knows classes "
                         f"{classifier.classes_.tolist()} of {num_classes}; only heads trained "
                         "on every class export")
    kernel = classifier.coef_.T.astype(np.float64)
    bias = classifier.intercept_.astype(np.float64)
    for scaler in reversed(scalers):  # w . (x - mean) / scale + b
        if scaler.scale_ is not None:
            kernel = kernel / scaler.scale_[:, None]
        if scaler.mean_ is not None and scaler.with_mean:
            bias = bias - scaler.mean_ @ kernel
    return kernel.astype(np.float32), bias.astype(np.float32)


def _backbone_and_dense(manifest, kernel, bias):
    """The cache's backbone (its weights, size and preprocessing) followed by a dense layer.

    Args:
        manifest: the cache's manifest.
        kernel: the dense layer's kernel (embedding_dim, logits).
        bias: its bias (logits,).

    Returns:
        A `keras.Model` mapping images in [0, 255] to logits.
    """
    config = manifest["config"]
    backbone, _ = build_backbone(config["backbone"], image_size=config["image_size"],
                                 weights=manifest_weights(manifest), alpha=config["alpha"])
    backbone.name = "backbone"
    side = config["image_size"]
    inputs = keras.Input((side, side, 3), name="image")
    x = Preprocess(config["backbone"], name="preprocess")(inputs)
    x = backbone(x, training=False)
    dense = keras.layers.Dense(kernel.shape[1], name="head_logits")
    outputs = dense(x)
    dense.set_weights([kernel, bias])
    return keras.Model(inputs, outputs, name="head_export")


class _Serving:
    """The SavedModel's endpoints for one `_Exportable`."""

    def __init__(self, exportable):
        self.exportable = exportable
        self.class_names = tf.constant(exportable.class_names)

    def images(self, images):
        """`serving_images`: float images (n, side, side, 3) in [0, 255] to probabilities."""
        logits = self.exportable.model(images, training=False)
        return {"probabilities": _probabilities(logits, len(self.exportable.class_names))}

    def encoded(self, encoded):
        """`serving_default` without face crop: encoded images, each used whole."""
        return self.encoded_with_boxes(encoded, tf.fill([tf.shape(encoded)[0], 4], -1))

    def encoded_with_boxes(self, encoded, boxes):
        """`serving_default`: encoded images and face boxes to probabilities and class names."""
        side = self.exportable.image_size
        images = tf.map_fn(self._decode, (encoded, boxes),
                           fn_output_signature=tf.TensorSpec((side, side, 3), tf.float32))
        result = self.images(images)
        result["class_names"] = tf.tile(self.class_names[None], [tf.shape(encoded)[0], 1])
        return result

    def _decode(self, pair):
        encoded, box = pair
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        if self.exportable.face_crop:
            image = tf.cond(box[0] < 0, lambda: image,
                            lambda: image[box[0]:box[2], box[1]:box[3]])
        side = self.exportable.image_size
        return tf.image.resize(image, (side, side))


def _write_archive(exportable, path):
    """Writes the SavedModel of `exportable` (`serving_default`, `serving_images`) to `path`."""
    serving, side = _Serving(exportable), exportable.image_size
    inputs = [tf.TensorSpec((None,), tf.string, name="image_bytes")]
    if exportable.face_crop:
        inputs.append(tf.TensorSpec((None, 4), tf.int32, name="face_boxes"))
    archive = keras.export.ExportArchive()
    archive.track(exportable.model)
    archive.add_endpoint("serving_default", serving.encoded_with_boxes if exportable.face_crop
                         else serving.encoded, input_signature=inputs)
    archive.add_endpoint("serving_images", serving.images, input_signature=[
        tf.TensorSpec((None, side, side, 3), tf.float32, name="images")])
    archive.write_out(path, verbose=False)
    return path


def _write_json(path, value):
    with open(path, "w") as handle:
        json.dump(value, handle, indent=2)
    return path


def export_model(model_path, out_dir, *, int8=False):
    """Writes `saved_model/`, `model.tflite` (and `model_int8.tflite`), `labels.txt`,
    `export.json` (and `face_crop.json` for a model of face crops), published whole
    (`pipeline.publish`): an earlier export in `out_dir` is replaced at once, never mixed.

    Args:
        model_path: a fine-tuned `model.keras` (or its folder) from `jobs.finetune`, or a head
            folder from `jobs.train_head` (exported with its cache's backbone).
        out_dir: the output folder.
        int8: also write a dynamic-range int8 TFLite file. Defaults to `False`.

    Returns:
        A dict of the written paths: `saved_model`, `tflite`, (`tflite_int8`), `labels`,
        (`face_crop`) and `export`.

    Raises:
        ValueError: neither a fine-tuned model nor a head, a head whose cache or weights are not
            here, a head with no exact dense form, or an `out_dir` holding something other
            than an export.
    """
    check_out_dir(out_dir, job="export", markers=(EXPORT_INFO,))
    exportable = _load_for_export(model_path)
    with published_folder(out_dir, job="export", markers=(EXPORT_INFO,)) as staging:
        saved = _write_archive(exportable, os.path.join(staging, SAVED_MODEL))
        written = {"saved_model": saved, **_write_tflite_files(saved, staging, int8=int8),
                   "labels": _write_labels(exportable.class_names, os.path.join(staging, LABELS)),
                   **_write_descriptions(exportable, model_path, staging)}
    return {key: os.path.join(out_dir, os.path.relpath(path, staging))
            for key, path in written.items()}


def _write_tflite_files(saved_model, out_dir, *, int8):
    """`model.tflite` (and `model_int8.tflite`) from the SavedModel; their paths by key."""
    paths = {"tflite": _tflite(saved_model, os.path.join(out_dir, TFLITE))}
    if int8:
        paths["tflite_int8"] = _tflite(saved_model, os.path.join(out_dir, TFLITE_INT8),
                                       int8=True)
    return paths


def _write_labels(class_names, path):
    """`labels.txt`: one class name a line, in the order of the probabilities."""
    with open(path, "w") as handle:
        handle.write("\n".join(class_names) + "\n")
    return path


def _write_descriptions(exportable, model_path, out_dir):
    """`face_crop.json` (for a model of face crops) and `export.json`; their paths by key."""
    paths = {}
    if exportable.face_crop:
        paths["face_crop"] = _write_json(os.path.join(out_dir, FACE_CROP), face_crop_spec())
    paths["export"] = _write_json(os.path.join(out_dir, EXPORT_INFO), {
        "source": exportable.source, "model": os.fspath(model_path),
        "class_names": exportable.class_names, "image_size": exportable.image_size,
        "face_crop": exportable.face_crop, "backbone": exportable.backbone,
        "mirror": has_flip_tta(exportable.model)})
    return paths


def _tflite(saved_model, path, *, int8=False):
    """Converts the SavedModel's `serving_images` to a TFLite file at `path` (dynamic-range int8
    with `int8`); returns `path`."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model,
                                                         signature_keys=["serving_images"])
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with open(path, "wb") as handle:
        handle.write(converter.convert())
    return path


def tflite_probabilities(path, images):
    """Runs a TFLite file from `export_model` on float images (n, size, size, 3), one at a time."""
    interpreter = tf.lite.Interpreter(model_path=path)
    runner = interpreter.get_signature_runner("serving_images")
    return np.concatenate([runner(images=image[None].astype(np.float32))["probabilities"]
                           for image in np.asarray(images)])
