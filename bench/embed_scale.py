"""Embed job at scale: the driver's work and the job graph against the number of images, and
real runs on the FnApiRunner and on Dask.

    python bench/embed_scale.py [--sizes 1000 10000 100000] [--run-images 2000]

1. For each N, a folder of N tiny generated files (two classes; never decoded): the driver's
   seconds before the pipeline starts (opening the source, building the backbone, finding a
   previous cache, building the graph) and the serialized pipeline's bytes
   (`pipeline.to_runner_api().SerializeToString()`), built, not run.
2. A real run of the job on `--run-images` small generated images (MobileNet 0.25, 96 px,
   K = 0), as a subprocess, with the FnApiRunner (the local default) and with the
   DaskRunner on a LocalCluster (no scheduler address: Dask starts one worker per core): images/s
   of each, start-up included, and the two caches' shard digests compared.
Ends with one JSON line: `graph_bytes` and `driver_s` (per N), `fnapi_img_per_s`,
`dask_img_per_s`, `same_shards`.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import MOBILENET_025, emit, run_job  # noqa: E402

#: Real MobileNet 0.25 weights where ../shared has them (random weights give near-zero
#: embeddings whose last bits vary with the worker thread), at 96 px, K = 0.
BACKBONE = ["--backbone", "mobilenet", "--alpha", "0.25", "--image-size", "96",
            "--weights", str(MOBILENET_025) if MOBILENET_025.is_file() else "none",
            "--augment-copies", "0"]


def _tiny_files(root, count):
    for label in ("a", "b"):
        os.makedirs(os.path.join(root, label))
        for index in range(count // 2):
            open(os.path.join(root, label, f"{index:07d}.jpg"), "wb").close()
    return root


def driver_and_graph(root, cache_root):
    """Seconds the driver spends before the pipeline runs, and the graph's serialized bytes."""
    import apache_beam as beam

    from jobs.cli import config_from
    from jobs.embed import JOB
    from pipeline.features.config import EmbedConfig
    from pipeline.features.embed_job import _prepare, build_embed_pipeline

    config = config_from(EmbedConfig, JOB.parse(
        ["--data", root, "--cache-dir", cache_root, *BACKBONE]))
    start = time.perf_counter()
    prepared = _prepare(config)
    pipeline = beam.Pipeline()
    build_embed_pipeline(pipeline, config, source=prepared.source, weights=prepared.weights,
                         weights_digest=prepared.weights_digest, run_dir=prepared.run_dir,
                         base=prepared.base)
    seconds = time.perf_counter() - start
    return seconds, len(pipeline.to_runner_api().SerializeToString())


def real_run(root, cache_root, *runner):
    seconds, _, cache_dir = run_job("jobs.embed", ["--data", root, "--cache-dir", cache_root,
                                                   *BACKBONE, *runner])
    with open(os.path.join(cache_dir, "manifest.json")) as handle:
        manifest = json.load(handle)
    return seconds, manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--run-images", type=int, default=2_000)
    args = parser.parse_args()
    from pipeline.data.sample import write_sample

    graph, driver = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            root = _tiny_files(os.path.join(tmp, f"n{n}"), n)
            driver[n], graph[n] = driver_and_graph(root, os.path.join(tmp, f"cache{n}"))
            print(f"N = {n:>7,}: driver {driver[n]:6.2f} s before the pipeline runs, "
                  f"graph {graph[n]:,} bytes")
        images = write_sample(os.path.join(tmp, "faces"), per_class=args.run_images // 2,
                              size=64)
        fnapi_s, fnapi = real_run(str(images), os.path.join(tmp, "c_fnapi"))
        dask_s, dask = real_run(str(images), os.path.join(tmp, "c_dask"), "--runner=DaskRunner")
    same = fnapi["shards"] == dask["shards"] and fnapi["counts"] == dask["counts"]
    n = fnapi["listed"]
    print(f"real run, {n:,} images of 64 px, MobileNet 0.25 at 96 px, K = 0:")
    print(f"  FnApiRunner (in process): {fnapi_s:6.1f} s, {n / fnapi_s:6.1f} img/s")
    print(f"  DaskRunner (LocalCluster): {dask_s:6.1f} s, {n / dask_s:6.1f} img/s")
    print(f"  same shards (sha256) and counts: {same}")
    emit({"graph_bytes": graph, "driver_s": {k: round(v, 3) for k, v in driver.items()},
          "fnapi_img_per_s": round(n / fnapi_s, 2), "dask_img_per_s": round(n / dask_s, 2),
          "same_shards": same, "run_images": n})


if __name__ == "__main__":
    main()
