"""Train heads on a feature cache and report on them: what `python -m jobs.train_head` runs.

One call trains one head per requested training fraction (deterministic stratified subsets of the
training images, all copies of an image together), writes each head with its full report, and,
for several fractions, a comparison table: the seeds' "Model 1 / Model 2" experiments in seconds.
"""
import concurrent.futures
import dataclasses
import json
import os
import time

import numpy as np

from pipeline import reports
from pipeline.data.lists import source_paths
from pipeline.features import cache
from pipeline.publish import check_out_dir, published_folder
from pipeline.reports.runs import display_name
from pipeline.training.heads import HeadConfig, fraction_subset, train_head

__all__ = ["OUTPUT_MARKERS", "train_heads_on_cache", "example_paths", "data_name", "page_title",
           "comparison_markdown", "selection_section"]


#: The files that mark a folder as an earlier output of `jobs.train_head` (a head, fractions
#: compared, k-fold), written before `published.json` existed.
OUTPUT_MARKERS = ("head.json", "comparison.csv", "folds.csv")


def data_name(manifest):
    """The name of the data set a cache embedded, for titles: the folder's name, or the TFDS
    name (`pipeline.reports.runs.display_name`), never a path."""
    return display_name(manifest.get("source", {}).get("root") or manifest["config"]["data"])


def page_title(model, manifest, share):
    """A training page's title: the model, the data set by name and how much of it, e.g.
    `mobilenet_v2 + dense head on flower_photos (100 % of the training images)`.

    Args:
        model: what was trained, e.g. `"dense head"`: the cache's backbone is named before it.
        manifest: the cache's manifest.
        share: a fraction of the training images in (0, 1] (shown as a percentage), or a
            phrase such as `"5-fold cross-validation over 100 % of the images"`.
    """
    if not isinstance(share, str):
        share = f"{share * 100:g} % of the training images"
    return f"{manifest['config']['backbone']} + {model} on {data_name(manifest)} ({share})"


def example_paths(manifest, ids):
    """File paths of cached example ids (for thumbnails), or None for sources without files
    (`pipeline.data.lists.source_paths`)."""
    return source_paths(manifest.get("source", {}), ids)


def selection_section(selection):
    """The page's section on how the dense head's epoch count was chosen, and on what."""
    import html

    if selection["rule"] == "out_of_fold":
        text = (f"The head trained {selection['epochs']} epochs on all the training images: the "
                f"median best epoch of its members over {selection['folds']} folds of the "
                f"{selection['images']} training images (per fold: "
                f"{', '.join(map(str, selection['fold_epochs']))}); the validation images "
                "never steered it. Out of fold, on every training image: accuracy "
                f"{selection['out_of_fold_accuracy']:.4f}, log loss "
                f"{selection['out_of_fold_log_loss']:.4f}.")
    else:
        text = (f"The head stopped at its best epoch by validation loss (median over its members: "
                f"{selection['epochs']}), on {selection['images']} validation images, which then "
                "also judge it below.")
    return "How long the head trained", f"<p>{html.escape(text)}</p>"


def _fit_one(cache_dir, manifest, train, val, out_dir, *, config, fraction, top_n, verbose):
    """Trains and saves one fraction's head; returns the keyword arguments of its report."""
    mask = fraction_subset(train.ids, train.labels, fraction, seed=config.seed)
    subset = train if mask.all() else cache.FeatureSplit(*(array[mask] for array in train))
    start = time.perf_counter()
    head = train_head(subset, val, num_classes=len(manifest["class_names"]), config=config,
                      verbose=verbose)
    seconds = time.perf_counter() - start
    head.meta = {"cache_key": manifest["cache_key"], "cache_dir": cache_dir,
                 "class_names": manifest["class_names"],
                 "embed_config": manifest["config"], "head_config": dataclasses.asdict(config),
                 "train_fraction": fraction, "train_images": int(len(np.unique(subset.ids)))}
    head.save(out_dir)
    proba = head.predict_proba(val.embeddings)
    return dict(
        out_dir=out_dir, ids=val.ids, y_true=val.labels, proba=proba,
        class_names=manifest["class_names"],
        title=page_title(f"{config.head} head", manifest, fraction),
        paths=example_paths(manifest, val.ids), history=head.history,
        phases=[("head", 1)], top_n=top_n, config=dataclasses.asdict(config),
        sections=[selection_section(head.selection)] if head.selection else (),
        extra={"selection": head.selection, "job": "train_head", "cache_key": manifest["cache_key"], "cache_dir": cache_dir,
               "data_name": data_name(manifest),
               "embed_config": manifest["config"], "versions": manifest.get("versions"),
               "train_fraction": fraction, "train_images": head.meta["train_images"],
               "train_records": int(mask.sum()), "train_seconds": round(seconds, 3),
               "epochs_run": len(head.history.get("loss", [])) or None})


def train_heads_on_cache(cache_dir, out_dir, *, config=HeadConfig(), fractions=(1.0,),
                         top_n=50, verbose=0):
    """Trains and reports one head per training fraction.

    With one fraction, the head and its report are written to `out_dir`; with several, each goes
    to `out_dir/fraction_<f>/` and `out_dir` gets `comparison.csv`, `comparison.md`,
    `index.html` and a `report.json` whose `accuracy` is that of the largest fraction. The
    folder is published whole (`pipeline.publish`): an earlier head there stays as it was until
    the new one is complete.

    Args:
        cache_dir: a complete cache written by `jobs.embed`.
        out_dir: the output folder.
        config: a `HeadConfig`. Defaults to `HeadConfig()`.
        fractions: training fractions in (0, 1]. Defaults to `(1.0,)`.
        top_n: rows of the most-wrong report. Defaults to `50`.
        verbose: Keras progress display. Defaults to `0`.

    Returns:
        The list of report dicts, one per fraction.

    Raises:
        pipeline.features.cache.CacheError: the cache is incomplete or corrupt.
        ValueError: one class in training, no validation examples, or an `out_dir` that holds
            something other than a head.
    """
    check_out_dir(out_dir, job="train_head", markers=OUTPUT_MARKERS)
    manifest = cache.read_manifest(cache_dir)
    splits = cache.load_splits(cache_dir, {"train": False, "val": True})
    train, val = splits["train"], splits["val"]
    with published_folder(out_dir, job="train_head", markers=OUTPUT_MARKERS) as staging:
        folders = ([staging] if len(fractions) == 1 else
                   [os.path.join(staging, f"fraction_{fraction:g}") for fraction in fractions])
        # Each report (figures, thumbnails) is written in the background while the next
        # fraction's head trains: with small fractions it takes longer than the training.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as writer:
            pending = [writer.submit(reports.write_report, **_fit_one(
                cache_dir, manifest, train, val, folder, config=config, fraction=fraction,
                top_n=top_n, verbose=verbose)) for fraction, folder in zip(fractions, folders)]
            results = [report.result() for report in pending]
        if len(fractions) > 1:
            _write_comparison(staging, results, page_title(f"{config.head} head", manifest,
                                                           "training fractions compared"))
    return results


_COLUMNS = ("train_fraction", "train_images", "accuracy", "macro_f1", "roc_auc",
            "majority_baseline", "epochs_run", "train_seconds")


def _write_comparison(out_dir, results, title):
    rows = [[r[c] for c in _COLUMNS] for r in results]
    reports.write_csv(os.path.join(out_dir, "comparison.csv"), _COLUMNS, rows)
    table = comparison_markdown(results)
    with open(os.path.join(out_dir, "comparison.md"), "w") as handle:
        handle.write(table + "\n")
    links = "".join(f'<li><a href="fraction_{r["train_fraction"]:g}/index.html">fraction '
                    f'{r["train_fraction"]:g}</a>: accuracy {r["accuracy"]:.4f}</li>'
                    for r in results)
    with open(os.path.join(out_dir, "index.html"), "w") as handle:
        handle.write(reports.html_page(title, f"<ul>{links}</ul>"))
    largest = max(results, key=lambda r: r["train_fraction"])
    summary = {"accuracy": largest["accuracy"], "macro_f1": largest["macro_f1"],
               "fractions": [{c: r[c] for c in _COLUMNS} for r in results],
               "cache_key": largest["cache_key"], "config": largest["config"]}
    with open(os.path.join(out_dir, "report.json"), "w") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)


def comparison_markdown(results):
    """A Markdown table of the fractions' figures."""
    return reports.markdown_table(_COLUMNS, results)
