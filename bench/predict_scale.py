"""Predict job at scale: against the raw model and the embed job, FnApiRunner against Dask, the
driver's memory and the job graph against the number of images.

    python bench/predict_scale.py [--images 5000] [--rss-sizes 10000 100000]
                                  [--graph-sizes 1000 100000] [--work DIR] [--skip-dask]

The model: a dense head (`jobs.train_head --epochs 3`) on a cache of 120 generated faces, on
MobileNet 0.25 with the real weights of ../shared/weights at 96 px (the tiny MobileNetV2 0.35 at
48 px, random weights, where the file is absent). 1-3 run in this process (the setup built the
backbone: both jobs find it built) on `--images` generated faces of 64 px.
1. `predict_vs_raw`: img/s of `run_predict` (wall clock, local default FnApiRunner) / img/s of
   the same predictor (`load_predictor(open_model(head))`) over the same images pre-decoded and
   resized in memory, at the job's batch size (the last batch padded, as the job does).
2. `predict_vs_embed`: predict img/s / img/s of `jobs.embed.run` (K = 0, no face crop, same
   backbone and size, fresh cache dir) over the same images.
3. `fnapi_img_per_s` (the run of 1) and `dask_img_per_s`: the same run on the DaskRunner with a
   LocalCluster of 2 single-thread workers on 127.0.0.1 (its start-up not counted);
   `same_shards`: both outputs have the same shard sha256s and counts.
4. `driver_rss_mb`: peak RSS (ru_maxrss) of a fresh subprocess (`--driver-rss N`) running
   `jobs.evaluate` (the full report, from the shards' summaries) on N labelled images of 40 px
   (links to 400 generated ones) with the tiny backbone at 32 px on the local FnApiRunner (its
   workers run in that process), automatic shard count; `rss_img_per_s` too.
5. `graph_bytes`: the serialized predict graph (`pipeline.to_runner_api()`), built, not run,
   over folders of N empty .jpg files.
Ends with one JSON line. Generated folders stay under `--work` and are reused by later runs.
"""
import argparse
import glob
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import apache_beam as beam
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import MOBILENET_025, REPO, emit  # noqa: E402
from jobs import embed, evaluate, train_head  # noqa: E402
from pipeline.batch.options import pipeline_options  # noqa: E402
from pipeline.data.images import prepare_image  # noqa: E402
from pipeline.data.sample import write_sample  # noqa: E402
from pipeline.prediction.inputs import open_inputs  # noqa: E402
from pipeline.prediction.job import PredictConfig, build_predict_pipeline, run_predict  # noqa
from pipeline.prediction.models import load_predictor, open_model  # noqa: E402

TINY = ["--backbone", "mobilenet_v2", "--alpha", "0.35", "--weights", "none"]
MAIN = (["--backbone", "mobilenet", "--alpha", "0.25", "--image-size", "96", "--weights",
         str(MOBILENET_025)] if MOBILENET_025.is_file() else [*TINY, "--image-size", "48"])
K0 = ["--augment-copies", "0", "--no-face-crop"]


def _once(folder, make, *args):
    """`make(folder, *args)` unless an earlier run finished it (a `.done` marker beside it)."""
    if not os.path.exists(folder + ".done"):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        make(folder, *args)
        open(folder + ".done", "w").close()
    return folder


def _faces(root, count, size):
    write_sample(root, per_class=count // 2, size=size)  # the same files for the same count


def _empty(root, count):
    for index in range(count):
        open(os.path.join(root, f"{index:06d}.jpg"), "wb").close()


def _links(root, pool, count):
    """`count` files in the pool's class folders: hard links (or copies) of its images."""
    files = sorted(glob.glob(os.path.join(pool, "*", "*.jpg")))
    for index in range(count):
        source = files[index % len(files)]
        target = os.path.join(root, os.path.basename(os.path.dirname(source)),
                              f"img_{index:07d}.jpg")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)


def head(work, name, backbone):
    """Embeds the training faces with `backbone`, trains a 3-epoch dense head: its folder."""
    train = _once(os.path.join(work, "train"), _faces, 120, 64)
    cache = embed.run(["--data", train, *backbone, *K0, "--cache-dir",
                       os.path.join(work, "cache")]).cache_dir
    train_head.run(["--cache", cache, "--out", os.path.join(work, name), "--quiet", "--epochs",
                    "3"])
    return os.path.join(work, name)


def predict(model, data, out, *beam_args):
    """Seconds of one `run_predict` into a fresh `out` (no earlier output to reuse), manifest."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = run_predict(PredictConfig(model=model, data=data, out=out),
                         pipeline_options=pipeline_options(list(beam_args)))
    return time.perf_counter() - start, result.manifest


def raw_img_per_s(model, data):
    """The job's predictor over pre-decoded, resized images in memory, at its batch size."""
    spec, size = open_model(model), PredictConfig(model="", data="").batch_size
    predictor, images = load_predictor(spec), []
    for path in sorted(glob.glob(os.path.join(data, "*", "*.jpg"))):
        with open(path, "rb") as handle:
            images.append(prepare_image(handle.read(), spec.image_size,
                                        face_crop=spec.face_crop)[0])
    images = np.stack(images)
    predictor(images[:size], [""] * size)  # warm up (already traced by the job)
    start = time.perf_counter()
    for index in range(0, len(images), size):
        batch = images[index:index + size]
        predictor(np.concatenate([batch, np.zeros((size - len(batch),) + batch.shape[1:],
                                                  batch.dtype)]), [""] * len(batch))
    return len(images) / (time.perf_counter() - start)


def graph_bytes(model, root, run_dir):
    spec, pipeline = open_model(model), beam.Pipeline()
    build_predict_pipeline(pipeline, open_inputs(root, spec.class_names), spec,
                           PredictConfig(model=model, data=root), run_dir=run_dir)
    return len(pipeline.to_runner_api().SerializeToString())


def driver_rss(work, n):
    """Internal mode (a fresh process): evaluates the tiny head on N labelled images (a fresh
    reports folder, on the predict pass), prints its peak RSS as JSON."""
    reports_dir = os.path.join(work, "reports_rss", str(n))
    shutil.rmtree(reports_dir, ignore_errors=True)
    start = time.perf_counter()
    report, _ = evaluate.run(["--model", os.path.join(work, "head_tiny"), "--data",
                              os.path.join(work, f"rss_{n}"), "--reports-dir", reports_dir])
    seconds, rows = time.perf_counter() - start, report["num_examples"]
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "img_per_s": rows / seconds, "rows": rows}))


def rss_subprocess(work, n):
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--driver-rss", str(n),
                           "--work", work], cwd=REPO, capture_output=True, text=True,
                          check=False, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode:
        sys.exit(f"--driver-rss {n} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["rows"] == n, figures
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5_000)
    parser.add_argument("--rss-sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--graph-sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "predict_scale"))
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--driver-rss", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work, began = os.path.abspath(args.work), time.perf_counter()
    if args.driver_rss is not None:
        return driver_rss(work, args.driver_rss)
    model = head(work, "head_main", MAIN)
    head(work, "head_tiny", [*TINY, "--image-size", "32"])
    data = _once(os.path.join(work, f"images_{args.images}"), _faces, args.images, 64)
    n = 2 * (args.images // 2)
    fnapi_s, fnapi = predict(model, data, os.path.join(work, "out_fnapi"))
    job, raw = n / fnapi_s, raw_img_per_s(model, data)
    shutil.rmtree(os.path.join(work, "cache_bench"), ignore_errors=True)
    start = time.perf_counter()
    embed.run(["--data", data, *MAIN, *K0, "--cache-dir", os.path.join(work, "cache_bench")])
    embed_rate = n / (time.perf_counter() - start)
    dask = same = dask_start = None
    if not args.skip_dask:
        from distributed import LocalCluster
        start = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            dask_start = time.perf_counter() - start
            dask_s, manifest = predict(model, data, os.path.join(work, "out_dask"), "--runner",
                                       "DaskRunner", "--dask_client_address",
                                       cluster.scheduler_address)
        dask = n / dask_s
        same = fnapi["shards"] == manifest["shards"] and fnapi["counts"] == manifest["counts"]
    graph = {size: graph_bytes(model, _once(os.path.join(work, f"empty_{size}"), _empty, size),
                               os.path.join(work, "graph_run")) for size in args.graph_sizes}
    pool = _once(os.path.join(work, "pool"), _faces, 400, 40)
    rss = {}
    for size in args.rss_sizes:
        _once(os.path.join(work, f"rss_{size}"), _links, pool, size)
        rss[size] = rss_subprocess(work, size)
    option = dict(zip(MAIN[::2], MAIN[1::2], strict=True))
    print(f"dense head on {option['--backbone']} {option['--alpha']}, {option['--image-size']} "
          f"px, weights {os.path.basename(option['--weights'])}; {n:,} images of 64 px")
    print(f"  predict job (FnApiRunner):     {fnapi_s:6.1f} s {job:7.1f} img/s")
    print(f"  raw predictor, in memory:      {n / raw:6.1f} s {raw:7.1f} img/s  "
          f"job/raw {job / raw:.3f}")
    print(f"  embed job (K = 0):             {n / embed_rate:6.1f} s {embed_rate:7.1f} img/s  "
          f"predict/embed {job / embed_rate:.3f}")
    if dask is not None:
        print(f"  predict job (Dask, 2 workers): {n / dask:6.1f} s {dask:7.1f} img/s  (cluster "
              f"start {dask_start:.1f} s not counted); same shards and counts: {same}")
    for size, figures in rss.items():
        print(f"  evaluation driver peak RSS, {size:>7,} images: {figures['rss_mb']:6.0f} MB "
              f"({figures['img_per_s']:.0f} img/s)")
    for size, value in graph.items():
        print(f"  graph over {size:>7,} empty files: {value:,} bytes")
    emit({"predict_vs_raw": round(job / raw, 3), "predict_vs_embed": round(job / embed_rate, 3),
          "fnapi_img_per_s": round(job, 2), "raw_img_per_s": round(raw, 2),
          "embed_img_per_s": round(embed_rate, 2), "dask_img_per_s": dask and round(dask, 2),
          "same_shards": same, "dask_start_s": dask_start and round(dask_start, 2),
          "driver_rss_mb": {k: round(v["rss_mb"], 1) for k, v in rss.items()},
          "rss_img_per_s": {k: round(v["img_per_s"], 1) for k, v in rss.items()},
          "graph_bytes": graph, "images": n, "real_weights": MOBILENET_025.is_file(),
          "wall_s": round(time.perf_counter() - began, 1)})


if __name__ == "__main__":
    main()
