"""The backbone loop of the embed job fed by three decoders, side by side.

    python bench/embed_decoders.py [--per-class 600] [--image-size 192] [--repeats 2]

On the first `--per-class` GENKI-4K images of each class, MobileNetV2 1.0 with random weights
(the embed throughput bench's setting) embeds batches of 32 (the last padded) in one process per
run, each decoder in turn, `--repeats` rounds interleaved; only the decoder differs:

- `job`: the job's own (`pipeline.batch.spine.prefetch` over `pipeline.data.images
  .prepare_image` on two Python threads: Pillow reads each header, TensorFlow decodes and
  resizes eagerly);
- `tf.data paths`: `tf.data` reading and decoding the file paths in parallel (the minimal
  script's way);
- `tf.data bytes`: `tf.data` decoding bytes that Python read and digested (what the job would
  need to keep its per-file digest and accounting).

Prints the loop's seconds and the backbone's mean milliseconds a batch (the first batch left
out) per decoder and round; ends with one JSON line of the medians.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import REPO, emit, genki_subset  # noqa: E402

DECODERS = ("job", "tf.data paths", "tf.data bytes")

LOOP = r"""
import glob, hashlib, json, sys, time
import numpy as np
import tensorflow as tf
from pipeline.batch.spine import prefetch
from pipeline.data.images import prepare_image
from pipeline.features.backbones import Embedder

root, size, decoder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
paths = sorted(glob.glob(root + "/*/*"))
embed = Embedder("mobilenet_v2", image_size=size, weights=None)


def read(path):
    with open(path, "rb") as handle:
        data = handle.read()
    hashlib.sha256(data).hexdigest()
    return data


def decode(data):
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.raw_ops.ResizeBilinear(images=image[None], size=[size, size],
                                     half_pixel_centers=True)[0]


start = time.perf_counter()
if decoder == "job":
    images = prefetch(lambda path: prepare_image(read(path), size)[0], paths)
elif decoder == "tf.data paths":
    images = (tf.data.Dataset.from_tensor_slices(paths)
              .map(lambda path: decode(tf.io.read_file(path)),
                   num_parallel_calls=tf.data.AUTOTUNE).prefetch(64).as_numpy_iterator())
else:
    loaded = prefetch(read, paths)
    images = (tf.data.Dataset.from_generator(lambda: loaded,
                                             output_signature=tf.TensorSpec([], tf.string))
              .map(decode, num_parallel_calls=2).prefetch(64).as_numpy_iterator())
calls, batch = [], []
for image in images:
    batch.append(image)
    if len(batch) == 32:
        began = time.perf_counter()
        embed(np.stack(batch))
        calls.append(time.perf_counter() - began)
        batch = []
if batch:
    embed(np.stack(batch + [np.zeros_like(batch[0])] * (32 - len(batch))))
print(json.dumps({"loop_s": time.perf_counter() - start, "batch_ms": 1000 * np.mean(calls[1:])}))
"""


def run(root, image_size, decoder):
    done = subprocess.run([sys.executable, "-c", LOOP, root, str(image_size), decoder],
                          cwd=REPO, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=600)
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    root = genki_subset(os.path.join(tempfile.gettempdir(), f"embed_decoders_{args.per_class}"),
                        args.per_class)
    runs = {decoder: [] for decoder in DECODERS}
    print("| round | decoder | loop seconds | backbone ms a batch |\n|---|---|---|---|")
    for index in range(args.repeats):
        for decoder in DECODERS:
            figures = run(root, args.image_size, decoder)
            runs[decoder].append(figures)
            print(f"| {index + 1} | {decoder} | {figures['loop_s']:.2f} | "
                  f"{figures['batch_ms']:.0f} |", flush=True)
    emit({decoder.replace(" ", "_").replace(".", ""): {
              "loop_s": round(float(np.median([r["loop_s"] for r in found])), 2),
              "batch_ms": round(float(np.median([r["batch_ms"] for r in found])), 1)}
          for decoder, found in runs.items()} | {"images": 2 * args.per_class,
                                                  "image_size": args.image_size,
                                                  "repeats": args.repeats})


if __name__ == "__main__":
    main()
