"""A real review: the fine-tuned model against its head on a held-out GENKI-4K split.

    python bench/review_genki.py [--per-class 600] [--holdout 0.25] [--image-size 96]
                                 [--epochs 3] [--cache-root cache] [--out DIR]

Splits the first `--per-class` GENKI-4K images of each class by a hash of their names into a
training folder and a held-out folder (hard links under `--out`, never copies into the repo),
embeds the training folder (MobileNet 0.25, real weights), trains the default head and
fine-tunes from it, then runs the weekly gate on the held-out images: the head is evaluated and
blessed, the fine-tuned model is evaluated against it (`--baseline` by default: the blessed
model) with `--require accuracy-baseline>=0` and `--bless`, sliced by `--slice-by size`.
Prints both evaluations' figures and the paired comparison; ends with one JSON line.
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import GENKI, MOBILENET_025, emit, run_job  # noqa: E402


def split_folders(root, per_class, holdout):
    """Hard-links GENKI images into `root/train` and `root/holdout` by a hash of their names."""
    for name in ("not_smiling", "smiling"):
        for part in ("train", "holdout"):
            os.makedirs(os.path.join(root, part, name), exist_ok=True)
        for file in sorted(os.listdir(GENKI / name))[:per_class]:
            share = int(hashlib.sha256(file.encode()).hexdigest()[:8], 16) / 16**8
            target = os.path.join(root, "holdout" if share < holdout else "train", name, file)
            if not os.path.exists(target):
                os.link(GENKI / name / file, target)
    return os.path.join(root, "train"), os.path.join(root, "holdout")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=600)
    parser.add_argument("--holdout", type=float, default=0.25)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cache-root", default="cache")
    parser.add_argument("--out", default=None, help="keep the outputs here (default: temporary)")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp()
    train, holdout = split_folders(os.path.join(out, "data"), args.per_class, args.holdout)
    _, _, cache_dir = run_job("jobs.embed", [
        "--data", train, "--backbone", "mobilenet", "--alpha", "0.25", "--weights",
        str(MOBILENET_025), "--image-size", str(args.image_size), "--cache-dir",
        args.cache_root])
    head, tuned = os.path.join(out, "head"), os.path.join(out, "finetune")
    run_job("jobs.train_head", ["--cache", cache_dir, "--out", head])
    run_job("jobs.finetune", ["--cache", cache_dir, "--head-dir", head, "--out", tuned,
                              "--epochs", str(args.epochs)])
    reports = os.path.join(out, "reports")
    gate = ["--data", holdout, "--reports-dir", reports, "--slice-by", "size"]
    run_job("jobs.evaluate", ["--model", head, *gate, "--bless"])
    seconds, _, page = run_job("jobs.evaluate", [
        "--model", os.path.join(tuned, "model.keras"), *gate,
        "--require", "accuracy-baseline>=0", "--bless"], check=False)  # exit 1: not blessed
    with open(os.path.join(os.path.dirname(page), "report.json")) as handle:
        report = json.load(handle)
    against = report["baseline_comparison"]
    accuracy = against["metrics"]["accuracy"]
    print(f"held-out images: {against['num_examples']}")
    print(f"head {accuracy['baseline']:.4f} -> fine-tuned {accuracy['candidate']:.4f}: "
          f"{accuracy['difference']:+.4f} [{accuracy['low']:+.4f}, {accuracy['high']:+.4f}], "
          f"{against['fixed']} fixed, {against['broken']} newly broken, McNemar p "
          f"{against['mcnemar_p']:.3g}: {against['verdict']}")
    print(f"blessed: {bool(report.get('blessed'))}; the page: {page}")
    emit({"holdout_images": against["num_examples"], "head_accuracy": accuracy["baseline"],
          "finetuned_accuracy": accuracy["candidate"],
          "accuracy_difference": accuracy["difference"],
          "difference_low": accuracy["low"], "difference_high": accuracy["high"],
          "fixed": against["fixed"], "broken": against["broken"],
          "mcnemar_p": against["mcnemar_p"], "verdict": against["verdict"],
          "blessed": bool(report.get("blessed")), "evaluate_seconds": round(seconds, 1)})


if __name__ == "__main__":
    main()
