"""Embed-job throughput against the raw backbone, and memory against input size.

    python bench/embed_throughput.py [--n 300] [--image-size 192] [--pairs 3]

Side by side in one run, on N, 4N and 8N GENKI-4K images with MobileNetV2 (alpha 1.0, random
weights, K = 0): images/s of the whole embed job (`python -m jobs.embed` as a subprocess, start-up
included) in its default local mode (the FnApiRunner in the job's process) for N, 4N and 8N, and in
multi-processing mode (two worker processes) for 4N; and of the raw backbone (`tf.function` over
the same 4N images pre-decoded into memory, at the job's batch size, in this process: no import,
no model build, no decoding); a minimal standalone script as a subprocess (import TensorFlow,
build the backbone, decode with tf.data in parallel, embed: the least any program must do); the
ratios job / raw and job / script at 4N and 8N; the job's peak RSS (the largest child
process so far) for N and 4N. The job and the script at 4N are timed `--pairs` times, one after
the other (the machine's speed drifts over minutes: a pair shares its moment), and
`job_vs_script` is the median of the pairs' ratios (their minimum and maximum beside it). The
ceiling: the seconds a subprocess takes only to start Python and
import the job's modules (TensorFlow, Keras, Beam), and the ratio a job would reach at 4N if it did
nothing else but that import and the raw backbone's work (raw seconds / (import + raw seconds)).
Ends with one JSON line.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import REPO, emit, genki_subset, run_job  # noqa: E402
from pipeline.features.config import EmbedConfig  # noqa: E402


def raw_backbone_img_per_s(root, image_size, batch_size=EmbedConfig.batch_size):
    from pipeline.data.images import load_image
    from pipeline.data.sources import open_source
    from pipeline.features.backbones import Embedder

    refs = open_source(root).refs()
    images = np.stack([load_image(open(r.path, "rb").read(), image_size) for r in refs])
    embed = Embedder("mobilenet_v2", image_size=image_size, weights=None)
    embed(images[:batch_size])  # trace and warm up
    start = time.perf_counter()
    for index in range(0, len(images), batch_size):
        embed(images[index:index + batch_size])
    return len(images) / (time.perf_counter() - start)


#: The least a standalone program must do for the same embeddings: start Python, import
#: TensorFlow, build the backbone, decode and resize with tf.data (in parallel), embed.
MINIMAL_SCRIPT = """
import sys, glob
import tensorflow as tf
from pipeline.features.backbones import Embedder
root, size = sys.argv[1], int(sys.argv[2])
paths = sorted(glob.glob(root + "/*/*"))
embed = Embedder("mobilenet_v2", image_size=size, weights=None)
def load(path):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return tf.image.resize(image, (size, size))
data = tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=tf.data.AUTOTUNE)
for batch in data.batch(32).prefetch(2):
    embed(batch)
print(len(paths))
"""

MULTI_PROCESSING = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                    "--direct_num_workers=2"]


def minimal_script_seconds(root, image_size):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", MINIMAL_SCRIPT, root, str(image_size)], check=True,
                   cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def import_seconds():
    """Seconds to start Python and import the embed job's modules, nothing else."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pipeline.features.embed_job"], check=True,
                   cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def job_run(root, image_size, cache_dir, *runner):
    args = ["--data", root, "--backbone", "mobilenet_v2", "--alpha", "1.0", "--weights", "none",
            "--image-size", str(image_size), "--augment-copies", "0", "--no-face-crop",
            "--follow-links=any", "--cache-dir", cache_dir, *runner]
    return run_job("jobs.embed", args)[:2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="N images (half per class)")
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--pairs", type=int, default=3, help="job and script runs at 4N, paired")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = genki_subset(os.path.join(tmp, "n"), args.n // 2)
        large = genki_subset(os.path.join(tmp, "4n"), 2 * args.n)
        larger = genki_subset(os.path.join(tmp, "8n"), 4 * args.n)
        seconds_import = import_seconds()
        seconds_n, rss_n = job_run(small, args.image_size, os.path.join(tmp, "cache_n"))
        pairs = []  # (job seconds, script seconds) at 4N, each job into a fresh cache root
        for index in range(args.pairs):
            pairs.append((job_run(large, args.image_size, os.path.join(tmp, f"cache_4n{index}")),
                          minimal_script_seconds(large, args.image_size)))
        seconds_8n, _ = job_run(larger, args.image_size, os.path.join(tmp, "cache_8n"))
        seconds_mp, _ = job_run(large, args.image_size, os.path.join(tmp, "cache_mp"),
                                *MULTI_PROCESSING)
        raw = raw_backbone_img_per_s(large, args.image_size)
    ratios = sorted(script_s / job_s for (job_s, _), script_s in pairs)
    (seconds_4n, rss_4n), seconds_script = min(pairs, key=lambda pair: abs(
        pair[1] / pair[0][0] - float(np.median(ratios))))  # the median pair's figures
    job, multi = 4 * args.n / seconds_4n, 4 * args.n / seconds_mp
    job_8n, script = 8 * args.n / seconds_8n, 4 * args.n / seconds_script
    raw_seconds = 4 * args.n / raw
    ceiling = raw_seconds / (seconds_import + raw_seconds)
    print(f"{'':34}{'images':>8}{'seconds':>9}{'img/s':>8}{'peak RSS MB':>13}")
    print(f"{'embed job, N':34}{args.n:8d}{seconds_n:9.1f}{args.n / seconds_n:8.1f}{rss_n:13.0f}")
    print(f"{'embed job, 4N':34}{4 * args.n:8d}{seconds_4n:9.1f}{job:8.1f}{rss_4n:13.0f}")
    print(f"{'embed job, 8N':34}{8 * args.n:8d}{seconds_8n:9.1f}{job_8n:8.1f}")
    print(f"{'embed job, 4N, 2 worker processes':34}{4 * args.n:8d}{seconds_mp:9.1f}{multi:8.1f}")
    print(f"{'minimal standalone script, 4N':34}{4 * args.n:8d}{seconds_script:9.1f}"
          f"{script:8.1f}")
    print(f"{'raw backbone (tf.function)':34}{4 * args.n:8d}{raw_seconds:9.1f}{raw:8.1f}")
    print(f"{'import only (python -c ...)':34}{0:8d}{seconds_import:9.1f}")
    print(f"ratio job/raw, start-up included: {job / raw:.2f} at 4N (default mode), "
          f"{job_8n / raw:.2f} at 8N, {multi / raw:.2f} at 4N (2 worker processes)")
    print(f"job/minimal script at 4N, {args.pairs} pairs: "
          + ", ".join(f"{job_s:.1f} s / {script_s:.1f} s = {script_s / job_s:.3f}"
                      for (job_s, _), script_s in pairs)
          + f"; median {np.median(ratios):.3f}")
    print(f"ceiling at 4N (import + raw work, nothing else): {ceiling:.2f}")
    emit({"job_img_per_s": round(job, 2), "raw_img_per_s": round(raw, 2),
          "ratio": round(job / raw, 3), "ratio_8n": round(job_8n / raw, 3),
          "import_s": round(seconds_import, 2), "ceiling_4n": round(ceiling, 3),
          "multi_processing_img_per_s": round(multi, 2),
          "multi_processing_ratio": round(multi / raw, 3),
          "minimal_script_img_per_s": round(script, 2),
          "job_vs_script": round(float(np.median(ratios)), 3),
          "job_vs_script_min": round(ratios[0], 3), "job_vs_script_max": round(ratios[-1], 3),
          "pairs": args.pairs,
          "peak_rss_mb_n": round(rss_n, 1),
          "peak_rss_mb_4n": round(rss_4n, 1), "n": args.n, "image_size": args.image_size})


if __name__ == "__main__":
    main()
