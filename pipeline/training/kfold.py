"""Stratified k-fold evaluation of a head on cached features: seconds instead of hours.

Folds are drawn over images, not records: every augmented copy of an image stays in its image's
fold, and only clean copies are scored. All splits of the cache take part. Inside each round the
head is trained as `jobs.train_head` trains one: a tenth of the training images (by hash) is its
validation split, and its epoch count is chosen over folds of the rest
(`pipeline.training.dense_head`; with `epoch_folds=0`, by early stopping on that tenth), so the
scored fold never steers training.
"""
import dataclasses
import os

import numpy as np

from pipeline import reports
from pipeline.console import track
from pipeline.data.sources import assign_split
from pipeline.features import cache
from pipeline.publish import check_out_dir, published_folder
from pipeline.training.head_training import (OUTPUT_MARKERS, data_name, example_paths,
                                             page_title)
from pipeline.training.folds import assign_folds
from pipeline.training.heads import HeadConfig, train_head

__all__ = ["out_of_fold_proba", "kfold_on_cache"]

_METRICS = ("accuracy", "macro_f1", "roc_auc", "majority_baseline")


def _all_records(cache_dir, manifest):
    splits = cache.load_splits(cache_dir, dict.fromkeys(sorted(manifest["counts"]), False))
    return cache.FeatureSplit(*(np.concatenate(arrays) for arrays in zip(*splits.values())))


def _subset(data, mask):
    return cache.FeatureSplit(*(array[mask] for array in data))


def out_of_fold_proba(data, num_classes, *, folds, config=HeadConfig(), verbose=0):
    """Scores every clean image with a head that never saw it (nor its augmented copies).

    Args:
        data: a `cache.FeatureSplit` of all records (clean and augmented copies).
        num_classes: the number of classes.
        folds: K.
        config: the heads' `HeadConfig`; its seed draws the folds. Defaults to `HeadConfig()`.
        verbose: Keras verbosity. Defaults to `0`.

    Returns:
        `(fold, proba)`: the fold of every row, and (rows, num_classes) out-of-fold
        probabilities, filled for clean copies (`copies == 0`) and zero elsewhere.
    """
    fold = assign_folds(data.ids, data.labels, data.copies, folds, seed=config.seed)
    inner = np.array([assign_split(i, seed=config.seed + 1, val_fraction=0.1) == "val"
                      for i in data.ids])
    clean = data.copies == 0
    proba = np.zeros((len(data.ids), num_classes))
    for k in track(range(folds), desc="k-fold", unit="folds", disable=not verbose):
        train = _subset(data, (fold != k) & ~inner)
        stop = _subset(data, (fold != k) & inner & clean)
        head = train_head(train, stop, num_classes=num_classes, config=config, verbose=verbose)
        scored = (fold == k) & clean
        proba[scored] = head.predict_proba(data.embeddings[scored])
    return fold, proba


def kfold_on_cache(cache_dir, out_dir, *, folds, config=HeadConfig(), top_n=50, verbose=0):
    """Runs stratified k-fold head evaluation on a cache and writes its report.

    `report.json` holds the pooled out-of-fold figures at top level, `folds` (per fold) and
    `cv` (mean and standard deviation of accuracy, macro-F1, ROC-AUC, majority baseline).

    Returns:
        The report dict.
    """
    check_out_dir(out_dir, job="train_head", markers=OUTPUT_MARKERS)
    manifest = cache.read_manifest(cache_dir)
    data = _all_records(cache_dir, manifest)
    fold, proba = out_of_fold_proba(data, len(manifest["class_names"]), folds=folds,
                                    config=config, verbose=verbose)
    clean = data.copies == 0
    rows = []
    for k in range(folds):
        scored = (fold == k) & clean
        figures = reports.compute_metrics(data.labels[scored], proba[scored],
                                          manifest["class_names"])
        rows.append({"fold": k, "images": int(scored.sum()),
                     **{m: figures[m] for m in _METRICS}})
    cv = {m: {"mean": float(np.mean([r[m] for r in rows])),
              "std": float(np.std([r[m] for r in rows]))}
          for m in _METRICS if all(r[m] is not None for r in rows)}
    with published_folder(out_dir, job="train_head", markers=OUTPUT_MARKERS) as staging:
        reports.write_csv(os.path.join(staging, "folds.csv"), ["fold", "images", *_METRICS],
                          [[r["fold"], r["images"], *(r[m] for m in _METRICS)] for r in rows])
        return _write_kfold_report(staging, manifest, data, proba, rows, cv, folds=folds,
                                   cache_dir=cache_dir, config=config, top_n=top_n)


def _write_kfold_report(out_dir, manifest, data, proba, rows, cv, *, folds, cache_dir, config,
                        top_n):
    clean = data.copies == 0
    table = "".join(f"<tr><th>{m}</th><td>{v['mean']:.4f} &plusmn; {v['std']:.4f}</td></tr>"
                    for m, v in cv.items())
    title = page_title(f"{config.head} head", manifest,
                       f"{folds}-fold cross-validation over 100 % of the images")
    return reports.write_report(
        out_dir, ids=data.ids[clean], y_true=data.labels[clean], proba=proba[clean],
        class_names=manifest["class_names"], title=title,
        paths=example_paths(manifest, data.ids[clean]), top_n=top_n,
        config=dataclasses.asdict(config),
        sections=[(f"{folds}-fold cross-validation (mean &plusmn; std over folds; "
                   "per fold in folds.csv)", f"<table>{table}</table>")],
        extra={"job": "train_head --folds", "cache_key": manifest["cache_key"],
               "cache_dir": cache_dir, "data_name": data_name(manifest),
               "embed_config": manifest["config"], "folds": rows,
               "cv": cv, "versions": manifest.get("versions")})
