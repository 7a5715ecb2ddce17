"""Data-audit benchmark: how many deliberately flipped GENKI-4K labels does `jobs.audit` find?

    python bench/audit_genki.py [--fraction 0.05] [--seed 17] [--cache-root /tmp/audit_cache] [--embeddings 3]

Builds a temporary symlinked copy of ../shared/data/genki4k in which a seeded random `--fraction`
of the images sit under the other class, embeds it (MobileNet 0.25 real weights, 224 px, K = 2),
runs `jobs.audit` under several settings, then embeds it again with face crop and with
MobileNetV2 0.5 and audits each with two of the settings. For each it prints the precision and
recall of the flipped images among the top-k label-issue suspects for k = number flipped and 2k.
Ends with one JSON line.
"""
import argparse
import csv
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import GENKI, MOBILENET_025, emit, run_job  # noqa: E402

#: (name, `jobs.audit` flags), run on the first embedding.
SETTINGS = (
    ("logistic, 5 folds", ["--ensemble", "1"]),
    ("logistic, normalized margin", ["--ensemble", "1", "--label-score", "normalized_margin"]),
    ("logistic, 10 folds", ["--ensemble", "1", "--folds", "10"]),
    ("logistic, clean copies only", ["--ensemble", "1", "--no-augmented"]),
    ("logistic, ensemble of 5", ["--ensemble", "5"]),  # the default
    ("dense, 5 folds", ["--ensemble", "1", "--head", "dense"]),
    ("dense, ensemble of 3", ["--head", "dense", "--ensemble", "3"]),
    ("logistic, 10 folds, ensemble of 5", ["--folds", "10", "--ensemble", "5"]),
)
#: The settings run on every embedding (by name).
ON_EVERY_EMBEDDING = ("logistic, 5 folds", "logistic, 10 folds, ensemble of 5")
MOBILENET_V2_05 = MOBILENET_025.parent / (
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5")
#: (name, `jobs.embed` flags); each later one is audited with `ON_EVERY_EMBEDDING` only.
EMBEDDINGS = (
    ("MobileNet 0.25", ["--backbone", "mobilenet", "--alpha", "0.25", "--weights",
                        str(MOBILENET_025), "--no-face-crop"]),
    ("MobileNet 0.25, face crop", ["--backbone", "mobilenet", "--alpha", "0.25", "--weights",
                                   str(MOBILENET_025), "--face-crop"]),
    ("MobileNetV2 0.5", ["--backbone", "mobilenet_v2", "--alpha", "0.5", "--weights",
                         str(MOBILENET_V2_05), "--no-face-crop"]),
)


def flipped_copy(root, fraction, seed):
    """Symlinks GENKI-4K under `root` with `fraction` of the images filed under the other class.

    Returns:
        The set of ids (relative paths in the copy) whose label is wrong.
    """
    if not GENKI.is_dir():
        sys.exit(f"{GENKI} is not here: the benchmark needs the GENKI-4K folder")
    classes = sorted(n for n in os.listdir(GENKI) if (GENKI / n).is_dir())
    files = [(name, file) for name in classes for file in sorted(os.listdir(GENKI / name))]
    rng = np.random.default_rng(seed)
    flip = set(rng.choice(len(files), size=round(fraction * len(files)), replace=False).tolist())
    flipped = set()
    for index, (name, file) in enumerate(files):
        target = classes[1 - classes.index(name)] if index in flip else name
        os.makedirs(os.path.join(root, target), exist_ok=True)
        link = os.path.join(root, target, file)
        if not os.path.lexists(link):
            os.symlink(GENKI / name / file, link)
        if index in flip:
            flipped.add(f"{target}/{file}")
    return flipped


def precision_recall(label_issues_csv, flipped):
    """Precision and recall of `flipped` among the top k and 2k suspects."""
    with open(label_issues_csv, newline="") as handle:
        ranked = [row["id"] for row in csv.DictReader(handle)]
    result = {}
    for name, k in (("k", len(flipped)), ("2k", 2 * len(flipped))):
        hits = len(flipped & set(ranked[:k]))
        result[f"precision@{name}"] = hits / k
        result[f"recall@{name}"] = hits / len(flipped)
    return result


def _audit(cache_dir, target, flags, flipped):
    seconds, _, _ = run_job("jobs.audit", ["--cache", cache_dir, "--out", target, *flags])
    scores = precision_recall(os.path.join(target, "label_issues.csv"), flipped)
    return {**{m: round(v, 4) for m, v in scores.items()}, "wall_s": round(seconds, 1)}


def _print(name, result):
    print(f"{name:64}" + "".join(f"{result[m]:8.4f}" for m in (
        "precision@k", "recall@k", "precision@2k", "recall@2k")) + f"{result['wall_s']:8.1f}",
        flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--cache-root", default="/tmp/audit_cache")
    parser.add_argument("--data-root", default="/tmp/audit_genki_flipped")
    parser.add_argument("--embeddings", type=int, default=len(EMBEDDINGS),
                        help="how many of the embeddings to compare (1: the first only)")
    args = parser.parse_args()
    flipped = flipped_copy(args.data_root, args.fraction, args.seed)
    out = tempfile.mkdtemp(prefix="audit_bench_")
    figures = {"flipped": len(flipped)}
    print(f"{len(flipped)} of 3200 labels flipped (seed {args.seed})")
    print(f"{'embedding / audit setting':64}{'P@k':>8}{'R@k':>8}{'P@2k':>8}{'R@2k':>8}"
          f"{'wall s':>8}")
    for number, (embedding, embed_flags) in enumerate(EMBEDDINGS[:args.embeddings]):
        embed_s, _, cache_dir = run_job("jobs.embed", [
            "--data", args.data_root, *embed_flags, "--image-size", "224",
            "--augment-copies", "2", "--follow-links=any", "--cache-dir", args.cache_root])
        figures[f"{embedding} embed_s"] = round(embed_s, 1)
        for setting, flags in SETTINGS:
            if number and setting not in ON_EVERY_EMBEDDING:
                continue
            name = f"{embedding} / {setting}"
            target = os.path.join(out, f"{number}_{setting}".replace(" ", "_").replace(",", ""))
            figures[name] = _audit(cache_dir, target, flags, flipped)
            _print(name, figures[name])
    emit(figures)


if __name__ == "__main__":
    main()
