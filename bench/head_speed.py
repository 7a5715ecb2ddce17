"""Seconds of `python -m jobs.train_head` with its defaults, this checkout against a git commit.

    python bench/head_speed.py [--cache-root /tmp/head_speed_cache] [--before HEAD] [--repeat 1]

Embeds GENKI-4K once at 224 px with K = 2 and the real MobileNetV2 0.5 weights
(`python -m jobs.embed ... --cache-dir CACHE_ROOT`, which reuses a complete cache of the same
key: the first run takes minutes, later ones seconds), then times the head job in a subprocess,
start-up included, for this checkout's code and for `--before`'s (exported with `git archive`
into a temporary folder and run there), alternately, `--repeat` times each. Prints a table (the
fastest run of each, and the validation accuracy of its report) and the machine's load, and ends
with one JSON line.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import GENKI, REPO, emit  # noqa: E402

WEIGHTS = REPO.parent / "shared" / "weights"


def build_cache(cache_root):
    """The GENKI-4K cache (224 px, K = 2) under `cache_root`: its folder."""
    done = subprocess.run(
        [sys.executable, "-m", "jobs.embed", "--data", str(GENKI), "--weights-dir", str(WEIGHTS),
         "--image-size", "224", "--augment-copies", "2", "--no-face-crop",
         "--cache-dir", str(cache_root)],
        cwd=REPO, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return done.stdout.strip().splitlines()[-1]


def export_code(commit, folder):
    """Writes `commit`'s `pipeline` and `jobs` packages into `folder`."""
    archive = subprocess.run(["git", "archive", commit, "pipeline", "jobs"], cwd=REPO,
                             check=True, stdout=subprocess.PIPE).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)


def time_head_job(code_root, cache_dir, out):
    """Runs the head job of the code under `code_root`; returns (seconds, its report.json)."""
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jobs.train_head", "--cache", cache_dir, "--out", out],
                   cwd=code_root, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, json.loads(pathlib.Path(out, "report.json").read_text())


def fastest(runs):
    """The run of fewest seconds, as a table row."""
    seconds, report = min(runs, key=lambda run: run[0])
    return {"seconds": seconds, "train_seconds": report["train_seconds"],
            "epochs_run": report["epochs_run"], "val_accuracy": report["accuracy"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache-root", default=os.path.join(tempfile.gettempdir(),
                                                             "head_speed_cache"))
    parser.add_argument("--before", default="HEAD", help="the commit to compare with")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    cache_dir = build_cache(args.cache_root)
    load_before = os.getloadavg()[0]
    runs = {"now": [], "before": []}
    with tempfile.TemporaryDirectory() as tmp:
        export_code(args.before, tmp)
        for index in range(args.repeat):
            for name, root in (("before", tmp), ("now", REPO)):
                out = os.path.join(tmp, "out", f"{name}{index}")
                runs[name].append(time_head_job(root, cache_dir, out))
    rows = {name: fastest(found) for name, found in runs.items()}
    load = (load_before, os.getloadavg()[0])
    print(f"cache {cache_dir}; load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after; "
          f"fastest of {args.repeat}\n")
    print("| code | job seconds (start-up included) | train seconds | epochs (first member) "
          "| val accuracy |\n|---|---|---|---|---|")
    for name, label in (("before", f"{args.before} (members one by one)"),
                        ("now", "this checkout (members together)")):
        row = rows[name]
        print(f"| {label} | {row['seconds']:.1f} | {row['train_seconds']:.1f} | "
              f"{row['epochs_run']} | {row['val_accuracy']:.4f} |")
    emit({"head_seconds": round(rows["now"]["seconds"], 2),
          "head_seconds_before": round(rows["before"]["seconds"], 2),
          "train_seconds": rows["now"]["train_seconds"],
          "train_seconds_before": rows["before"]["train_seconds"],
          "val_accuracy": rows["now"]["val_accuracy"],
          "val_accuracy_before": rows["before"]["val_accuracy"],
          "load_average": [round(value, 2) for value in load], "repeat": args.repeat,
          "before": args.before})


if __name__ == "__main__":
    main()
