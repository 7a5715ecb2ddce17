"""The seeds' recipe against this project's cached-feature head, side by side on GENKI-4K.

    python bench/head_vs_seed.py [--seed-epochs 3] [--image-size 224]

(a) the seeds' recipe: `model.fit` of augmentation -> preprocess -> frozen MobileNet 0.25 (real
ImageNet weights) -> pooling -> dropout -> dense, Adam, batch 32, for a few epochs, every epoch
re-running the backbone over every image; (b) this project: `python -m jobs.embed` with K = 2,
then `python -m jobs.train_head`. Both use the same train/validation split (the embed job's).
Prints seconds per epoch of each, the time each takes to reach (a)'s best validation accuracy,
and the ratio; ends with one JSON line.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import GENKI, MOBILENET_025, emit, run_job  # noqa: E402


def seeds_recipe(refs, image_size, epochs):
    """Trains the seeds' model; returns (seconds per epoch list, val accuracy per epoch)."""
    import keras
    import tensorflow as tf

    from pipeline.data.augment import AugmentConfig, build_augmenter

    def dataset(split, shuffle):
        chosen = [r for r in refs if r.split == split]
        paths = tf.constant([r.path for r in chosen])
        labels = tf.constant([float(r.label) for r in chosen])

        def load(path, label):
            image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            return tf.image.resize(image, (image_size, image_size)), label

        data = tf.data.Dataset.from_tensor_slices((paths, labels))
        if shuffle:
            data = data.shuffle(len(chosen), seed=123)
        return data.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(32).prefetch(2)

    keras.utils.set_random_seed(123)
    base = keras.applications.MobileNet(alpha=0.25, include_top=False, weights=str(MOBILENET_025),
                                        input_shape=(image_size, image_size, 3))
    base.trainable = False
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.Sequential(build_augmenter(AugmentConfig()))(inputs)
    x = keras.applications.mobilenet.preprocess_input(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")])
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    history = model.fit(dataset("train", True), validation_data=dataset("val", False),
                        epochs=epochs, callbacks=[Timer()], verbose=2)
    return times, history.history["val_accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed-epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    from pipeline.data.sources import open_source

    refs = open_source(str(GENKI)).refs()
    with tempfile.TemporaryDirectory() as tmp:
        embed_seconds, _, cache_dir = run_job("jobs.embed", [
            "--data", str(GENKI), "--backbone", "mobilenet", "--alpha", "0.25", "--weights",
            str(MOBILENET_025), "--image-size", str(args.image_size), "--augment-copies", "2",
            "--no-face-crop", "--cache-dir", os.path.join(tmp, "cache")])
        head_seconds, _, _ = run_job("jobs.train_head", ["--cache", cache_dir, "--out",
                                                      os.path.join(tmp, "head"), "--quiet"])
        with open(os.path.join(tmp, "head", "report.json")) as handle:
            head = json.load(handle)
    seed_times, seed_val = seeds_recipe(refs, args.image_size, args.seed_epochs)
    seed_epoch = sum(seed_times) / len(seed_times)
    target = max(seed_val)
    val_curve = head["history"]["val_accuracy"]
    head_epoch = head["train_seconds"] / len(val_curve)
    reached = next((i + 1 for i, v in enumerate(val_curve) if v >= target), None)
    ours_to_target = (embed_seconds + head_epoch * reached) if reached else None
    seed_to_target = sum(seed_times[:seed_val.index(target) + 1])
    print(f"{'':34}{'s/epoch':>9}{'best val acc':>14}{'s to reach target':>19}")
    print(f"{'(a) seeds recipe, model.fit':34}{seed_epoch:9.2f}{target:14.4f}{seed_to_target:19.1f}")
    print(f"{'(b) embed K=2 + dense head':34}{head_epoch:9.3f}{max(val_curve):14.4f}"
          f"{ours_to_target if ours_to_target else float('nan'):19.1f}")
    print(f"embed job {embed_seconds:.1f} s (once); head training {head['train_seconds']:.1f} s "
          f"({len(val_curve)} epochs, early stopping); head process incl. start-up "
          f"{head_seconds:.1f} s; final head val accuracy {head['accuracy']:.4f}")
    seeds_20 = 20 * seed_epoch
    ours_total = embed_seconds + head["train_seconds"]
    print(f"seeds' 20-epoch phase (20 x measured s/epoch): {seeds_20:.0f} s; ours, embed + head: "
          f"{ours_total:.0f} s; speed-up {seeds_20 / ours_total:.1f}x")
    emit({"seed_s_per_epoch": round(seed_epoch, 3), "seed_best_val": round(target, 4),
          "seed_epochs": args.seed_epochs, "seed_s_to_target": round(seed_to_target, 1),
          "head_s_per_epoch": round(head_epoch, 4), "head_val_accuracy": head["accuracy"],
          "head_best_val": round(max(val_curve), 4), "head_train_s": head["train_seconds"],
          "embed_s": round(embed_seconds, 1),
          "ours_s_to_target": ours_to_target and round(ours_to_target, 1),
          "speedup_vs_seed_20_epochs": round(seeds_20 / ours_total, 2),
          "ratio_to_target": ours_to_target and round(seed_to_target / ours_to_target, 2)})


if __name__ == "__main__":
    main()
