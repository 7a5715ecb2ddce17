"""Exported model parity and int8 cost, on the validation images of a fine-tuned model.

    python bench/export_genki.py --model runs/finetune/model.keras --cache cache/<key>

Exports the model (`jobs.export --int8`), then scores the cache's validation images with the Keras
model, the SavedModel's bytes signature, and the float32 and int8 TFLite files: prints the
largest probability difference to Keras and the accuracy of each, the TFLite files' sizes, and one
JSON line.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import emit  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--cache", required=True)
    args = parser.parse_args()
    import keras
    import tensorflow as tf

    from pipeline.data.images import load_image
    from pipeline.evaluation.export import export_model, tflite_probabilities
    from pipeline.features import cache
    from pipeline.training.image_data import split_refs
    from pipeline.training.heads import logits_to_proba

    _, refs = split_refs(cache.read_manifest(args.cache))
    size = cache.read_manifest(args.cache)["config"]["image_size"]
    encoded = [open(r.path, "rb").read() for r in refs]
    labels = np.array([r.label for r in refs])
    images = np.stack([load_image(data, size) for data in encoded])
    out = tempfile.mkdtemp()
    paths = export_model(args.model, out, int8=True)
    keras_p = logits_to_proba(keras.models.load_model(args.model).predict(images, verbose=0), 2)
    serve = tf.saved_model.load(paths["saved_model"]).signatures["serving_default"]
    saved_p = np.concatenate([serve(image_bytes=tf.constant(encoded[i:i + 64]))["probabilities"]
                              .numpy() for i in range(0, len(encoded), 64)])
    results = {"keras": keras_p, "saved_model": saved_p,
               "tflite": tflite_probabilities(paths["tflite"], images),
               "tflite_int8": tflite_probabilities(paths["tflite_int8"], images)}
    figures = {"images": len(refs)}
    print(f"{'':14}{'max |p - p_keras|':>20}{'accuracy':>10}")
    for name, proba in results.items():
        diff, accuracy = float(np.abs(proba - keras_p).max()), float(np.mean(proba.argmax(1) == labels))
        print(f"{name:14}{diff:20.2e}{accuracy:10.4f}")
        figures[f"{name}_max_diff"], figures[f"{name}_accuracy"] = diff, round(accuracy, 4)
    for key in ("tflite", "tflite_int8"):
        figures[f"{key}_kb"] = round(os.path.getsize(paths[key]) / 1024)
    print(f"TFLite sizes: float32 {figures['tflite_kb']} KB, int8 {figures['tflite_int8_kb']} KB")
    emit(figures)


if __name__ == "__main__":
    main()
