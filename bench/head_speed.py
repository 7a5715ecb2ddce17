"""Seconds of `python -m jobs.train_head` with its defaults: this checkout, and the same with the
head-training files of a git commit (the members trained one by one).

    python bench/head_speed.py [--cache-root /tmp/head_speed_cache] [--before 6ffc2aa] \
        [--files pipeline/training/heads.py ...] [--repeat 1] [--seeds 123 124 125]

Embeds GENKI-4K once at 224 px with K = 2 and the real MobileNetV2 0.5 weights
(`python -m jobs.embed ... --cache-dir CACHE_ROOT`, which reuses a complete cache of the same
key: the first run takes minutes, later ones seconds), then times the head job in a subprocess,
start-up included, for this checkout's code and for a copy of it (in a temporary folder, run
there) whose `--files` are `--before`'s (6ffc2aa: the last commit that trained the ensemble's
members one after another), so that only those files differ; alternately, `--repeat` times
each, for each of `--seeds` (`--seed S`, every other option at its default; 123 is the default
seed). Prints a table (per seed, the fastest run of each code and the validation accuracy of its
report; then the means) and the machine's load, and ends with one JSON line of the means (for
one seed, its figures).
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import GENKI, REPO, emit  # noqa: E402

WEIGHTS = REPO.parent / "shared" / "weights"
BEFORE_FILES = ("pipeline/training/heads.py", "pipeline/training/head_training.py")


def build_cache(cache_root):
    """The GENKI-4K cache (224 px, K = 2) under `cache_root`: its folder."""
    done = subprocess.run(
        [sys.executable, "-m", "jobs.embed", "--data", str(GENKI), "--weights-dir", str(WEIGHTS),
         "--image-size", "224", "--augment-copies", "2", "--no-face-crop",
         "--cache-dir", str(cache_root)],
        cwd=REPO, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return done.stdout.strip().splitlines()[-1]


def copy_code(folder, commit, files):
    """Copies this checkout's `pipeline` and `jobs` into `folder`, with `files` as at `commit`."""
    for package in ("pipeline", "jobs"):
        shutil.copytree(REPO / package, pathlib.Path(folder, package),
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in files:
        text = subprocess.run(["git", "show", f"{commit}:{name}"], cwd=REPO, check=True,
                              stdout=subprocess.PIPE).stdout
        pathlib.Path(folder, name).write_bytes(text)


def time_head_job(code_root, cache_dir, out, seed):
    """Runs the head job of the code under `code_root`; returns (seconds, its report.json)."""
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jobs.train_head", "--cache", cache_dir, "--out", out,
                    "--seed", str(seed)], cwd=code_root, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, json.loads(pathlib.Path(out, "report.json").read_text())


def fastest(runs):
    """The run of fewest seconds, as a table row."""
    seconds, report = min(runs, key=lambda run: run[0])
    return {"seconds": seconds, "train_seconds": report["train_seconds"],
            "epochs_run": report["epochs_run"], "val_accuracy": report["accuracy"]}


def _table(rows, seeds, before):
    print("| seed | code | job seconds (start-up included) | train seconds | epochs (first member) "
          "| val accuracy |\n|---|---|---|---|---|---|")
    for seed in (*seeds, "mean"):
        for name, label in (("before", f"{before}'s head files (members one by one)"),
                            ("now", "this checkout (members together)")):
            row = rows[name, seed]
            print(f"| {seed} | {label} | {row['seconds']:.1f} | {row['train_seconds']:.1f} | "
                  f"{row['epochs_run']:g} | {row['val_accuracy']:.4f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache-root", default=os.path.join(tempfile.gettempdir(),
                                                             "head_speed_cache"))
    parser.add_argument("--before", default="6ffc2aa", help="the commit to compare with")
    parser.add_argument("--files", nargs="+", default=list(BEFORE_FILES),
                        help="the files taken from --before")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[123])
    args = parser.parse_args()
    cache_dir = build_cache(args.cache_root)
    load_before = os.getloadavg()[0]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        copy_code(tmp, args.before, args.files)
        for seed in args.seeds:
            runs = {"now": [], "before": []}
            for index in range(args.repeat):
                for name, root in (("before", tmp), ("now", REPO)):
                    out = os.path.join(tmp, "out", f"{name}{seed}-{index}")
                    runs[name].append(time_head_job(root, cache_dir, out, seed))
            rows.update(((name, seed), fastest(found)) for name, found in runs.items())
    for name in ("now", "before"):
        rows[name, "mean"] = {key: float(np.mean([rows[name, seed][key] for seed in args.seeds]))
                              for key in rows[name, args.seeds[0]]}
    load = (load_before, os.getloadavg()[0])
    print(f"cache {cache_dir}; load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after; "
          f"fastest of {args.repeat} per seed and code\n")
    _table(rows, args.seeds, args.before)
    now, before = rows["now", "mean"], rows["before", "mean"]
    emit({"head_seconds": round(now["seconds"], 2),
          "head_seconds_before": round(before["seconds"], 2),
          "train_seconds": round(now["train_seconds"], 3),
          "train_seconds_before": round(before["train_seconds"], 3),
          "val_accuracy": round(now["val_accuracy"], 4),
          "val_accuracy_before": round(before["val_accuracy"], 4),
          "load_average": [round(value, 2) for value in load], "repeat": args.repeat,
          "seeds": args.seeds, "before": args.before})


if __name__ == "__main__":
    main()
