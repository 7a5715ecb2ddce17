"""Dense-head levers on cached embeddings: validation accuracy and seconds per variant and seed.

    python bench/head_ablation.py --cache flowers=CACHE_DIR --cache genki=CACHE_DIR \\
        [--per-class flowers75=flowers:75] [--seeds 123 124] [--variants base wd mixup ...]

Each `--cache NAME=DIR` is a complete cache written by `jobs.embed`; `--per-class
NEW=NAME:N` adds a data set made of NAME's cache with only N training images per class (the
first N of each class by a hash of the id: a deterministic subset; every augmented copy of a kept
image is kept, and the validation split is NAME's, whole). Every variant is a `HeadConfig`
(so what is measured is what the library ships), trained by `pipeline.training.heads.train_head` on all
copies and scored on the clean validation embeddings. Prints a Markdown table (mean over seeds,
and each seed) and ends with one JSON line.
"""
import argparse
import hashlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import emit  # noqa: E402
from pipeline.features import cache  # noqa: E402
from pipeline.training.heads import HeadConfig, train_head  # noqa: E402

#: The levers, each a set of `HeadConfig` fields over the defaults.
VARIANTS = {
    "base": {},
    "dropout0.5": {"dropout": 0.5},
    "wd1e-3": {"weight_decay": 1e-3},
    "wd1e-2": {"weight_decay": 1e-2},
    "smooth0.1": {"label_smoothing": 0.1},
    "mixup0.2": {"mixup": 0.2},
    "mixup0.4": {"mixup": 0.4},
    "std": {"standardize": True},
    "std+drop0.5": {"standardize": True, "dropout": 0.5},
    "lr1e-3": {"learning_rate": 1e-3},
    "lr1e-3+p10": {"learning_rate": 1e-3, "patience": 10},
    "wd0.1": {"weight_decay": 0.1},
    "wd1": {"weight_decay": 1.0},
    "ens5": {"ensemble": 5},
    "ens5+mixup0.2": {"ensemble": 5, "mixup": 0.2},
    "logistic": {"head": "logistic"},
}


def per_class_subset(split, per_class, *, seed=0):
    """The rows of the first `per_class` images of each class, by a hash of (seed, id)."""
    keep = set()
    for label in np.unique(split.labels):
        ids = sorted(set(split.ids[split.labels == label].tolist()),
                     key=lambda i: hashlib.sha256(f"{seed}\x00{i}".encode()).digest())
        keep.update(ids[:per_class])
    mask = np.isin(split.ids, list(keep))
    return cache.FeatureSplit(*(array[mask] for array in split))


def _datasets(args):
    data = {}
    for spec in args.cache:
        name, path = spec.split("=", 1)
        manifest = cache.read_manifest(path)
        data[name] = (cache.load_split(path, "train"),
                      cache.load_split(path, "val", clean_only=True, verify=False),
                      len(manifest["class_names"]))
    for spec in args.per_class:
        name, rest = spec.split("=", 1)
        source, count = rest.rsplit(":", 1)
        train, val, classes = data[source]
        data[name] = (per_class_subset(train, int(count)), val, classes)
    return data


def _score(train, val, classes, config):
    start = time.perf_counter()
    head = train_head(train, val, num_classes=classes, config=config)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(head.predict_proba(val.embeddings).argmax(1) == val.labels))
    return accuracy, seconds, len(head.history.get("loss", [])) or None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", action="append", required=True, help="NAME=DIR")
    parser.add_argument("--per-class", action="append", default=[], help="NEW=NAME:N")
    parser.add_argument("--seeds", type=int, nargs="+", default=[123, 124])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    data = _datasets(args)
    results = []
    for name, (train, val, classes) in data.items():
        for variant in args.variants:
            runs = [_score(train, val, classes, HeadConfig(**VARIANTS[variant], seed=seed))
                    for seed in args.seeds]
            accuracies = [r[0] for r in runs]
            results.append({"data": name, "variant": variant, "images": len(set(train.ids)),
                            "accuracy": round(float(np.mean(accuracies)), 4),
                            "per_seed": [round(a, 4) for a in accuracies],
                            "seconds": round(float(np.mean([r[1] for r in runs])), 2),
                            "epochs": [r[2] for r in runs]})
            row = results[-1]
            print(f"| {name} | {variant} | {row['accuracy']:.4f} | "
                  f"{' / '.join(f'{a:.4f}' for a in accuracies)} | {row['seconds']:.1f} | "
                  f"{row['epochs']} |", flush=True)
    emit({"results": results, "seeds": args.seeds})


if __name__ == "__main__":
    main()
