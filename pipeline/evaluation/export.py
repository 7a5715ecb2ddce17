"""Export a fine-tuned model for serving: a SavedModel that takes encoded image bytes, TFLite files
and `labels.txt`.

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
"""
import json
import os

import keras
import numpy as np
import tensorflow as tf

from pipeline.data.faces import face_crop_spec
from pipeline.training.end_to_end import load_finetuned

__all__ = ["export_model", "tflite_probabilities", "SAVED_MODEL", "TFLITE", "TFLITE_INT8", "LABELS",
           "FACE_CROP"]

SAVED_MODEL, TFLITE, TFLITE_INT8, LABELS = ("saved_model", "model.tflite", "model_int8.tflite",
                                            "labels.txt")
FACE_CROP = "face_crop.json"


def _probabilities(logits, num_classes):
    if num_classes == 2:
        positive = tf.sigmoid(logits[:, 0])
        return tf.stack([1.0 - positive, positive], axis=1)
    return tf.nn.softmax(logits)


def export_model(model_path, out_dir, *, int8=False):
    """Writes `saved_model/`, `model.tflite` (and `model_int8.tflite`) and `labels.txt`.

    Args:
        model_path: a fine-tuned `model.keras` (or its folder) from `jobs.finetune`.
        out_dir: the output folder.
        int8: also write a dynamic-range int8 TFLite file. Defaults to `False`.

    Returns:
        A dict of the written paths.

    Raises:
        ValueError: not a fine-tuned model.
    """
    model, info = load_finetuned(model_path)
    face_crop = bool(info["embed_config"].get("face_crop"))
    names, side = info["class_names"], info["image_size"]
    num_classes = len(names)
    class_names = tf.constant(names)

    def decode(encoded, box):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        if face_crop:
            image = tf.cond(box[0] < 0, lambda: image, lambda: image[box[0]:box[2],
                                                                      box[1]:box[3]])
        return tf.image.resize(image, (side, side))

    def serve_images(images):
        return {"probabilities": _probabilities(model(images, training=False), num_classes)}

    def serve_bytes(encoded, boxes):
        images = tf.map_fn(lambda pair: decode(*pair), (encoded, boxes),
                           fn_output_signature=tf.TensorSpec((side, side, 3), tf.float32))
        result = serve_images(images)
        result["class_names"] = tf.tile(class_names[None], [tf.shape(encoded)[0], 1])
        return result

    inputs = [tf.TensorSpec((None,), tf.string, name="image_bytes")]
    if face_crop:
        inputs.append(tf.TensorSpec((None, 4), tf.int32, name="face_boxes"))
        serve = serve_bytes
    else:
        def serve(encoded):
            return serve_bytes(encoded, tf.fill([tf.shape(encoded)[0], 4], -1))

    os.makedirs(out_dir, exist_ok=True)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=inputs)
    archive.add_endpoint("serving_images", serve_images, input_signature=[
        tf.TensorSpec((None, side, side, 3), tf.float32, name="images")])
    saved = os.path.join(out_dir, SAVED_MODEL)
    archive.write_out(saved, verbose=False)
    paths = {"saved_model": saved, "tflite": _tflite(saved, os.path.join(out_dir, TFLITE))}
    if int8:
        paths["tflite_int8"] = _tflite(saved, os.path.join(out_dir, TFLITE_INT8), int8=True)
    paths["labels"] = os.path.join(out_dir, LABELS)
    with open(paths["labels"], "w") as handle:
        handle.write("\n".join(names) + "\n")
    if face_crop:
        paths["face_crop"] = os.path.join(out_dir, FACE_CROP)
        with open(paths["face_crop"], "w") as handle:
            json.dump(face_crop_spec(), handle, indent=2)
    return paths


def _tflite(saved_model, path, *, int8=False):
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
