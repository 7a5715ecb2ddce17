"""The evaluation report every job writes: files a person opens, and `report.json` for scripts.

Computing, holding and drawing are separate, in the scikit-learn manner: `compute_metrics` turns
labels and probabilities into numbers; `write_report` draws them with the libraries made for it
(scikit-learn's `ConfusionMatrixDisplay`, matplotlib) and writes, into one folder:

| file | what |
|---|---|
| `index.html` | links everything, with the headline numbers and the run's stamp |
| `report.json` | every figure plus the config, cache key and versions (top-level `accuracy`) |
| `confusion_matrix.png` / `.csv` | counts and row-normalised |
| `per_class.csv`, `classification_report.txt` | precision, recall, F1, support |
| `curves.png` | training curves of every phase, with a marker where each phase starts |
| `most_wrong.csv` / `.html` | misclassified examples ranked by the wrong prediction's confidence |
"""
import csv
import html
import json
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics  # noqa: E402

__all__ = ["compute_metrics", "most_wrong", "write_report", "plot_curves", "write_csv", "html_page",
           "markdown_table"]

_THUMB_SIDE = 96


def compute_metrics(y_true, proba, class_names):
    """Accuracy, per-class precision/recall/F1/support, averages, confusion matrix, ROC-AUC.

    Args:
        y_true: int labels (n,).
        proba: probabilities (n, num_classes).
        class_names: the class names.

    Returns:
        A JSON-ready dict. `majority_baseline` is the accuracy of always predicting the most
        frequent true class, the floor every number should be read against.
    """
    y_true = np.asarray(y_true)
    y_pred = np.argmax(proba, axis=1)
    labels = list(range(len(class_names)))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    result = {
        "num_examples": int(len(y_true)),
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean(f1)),
        "weighted_f1": float(np.average(f1, weights=support) if support.sum() else 0.0),
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "majority_baseline": float(np.bincount(y_true, minlength=len(labels)).max()
                                   / max(len(y_true), 1)),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(class_names)},
        "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "roc_auc": None,
    }
    if len(class_names) == 2 and len(np.unique(y_true)) == 2:
        result["roc_auc"] = float(metrics.roc_auc_score(y_true, proba[:, 1]))
    return result


def most_wrong(ids, y_true, proba, class_names, *, paths=None, top_n=50):
    """The misclassified examples, sorted by the confidence of the wrong prediction (highest first).

    Returns:
        A list of dicts with keys rank, id, path, true, predicted, confidence.
    """
    y_pred = np.argmax(proba, axis=1)
    wrong = np.flatnonzero(y_pred != np.asarray(y_true))
    confidence = proba[wrong, y_pred[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][:top_n]
    return [{"rank": rank + 1, "id": str(ids[i]), "path": paths[i] if paths else "",
             "true": class_names[y_true[i]], "predicted": class_names[y_pred[i]],
             "confidence": float(proba[i, y_pred[i]])} for rank, i in enumerate(order)]


def plot_curves(history, *, phases=None, ax=None):
    """Draws accuracy and loss per epoch; `phases` is [(name, first epoch)], drawn as markers.

    Returns:
        The matplotlib figure.
    """
    if ax is None:
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    else:
        fig = ax[0].figure
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for axis, metric in zip(ax, ("accuracy", "loss")):
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            if history.get(key):
                axis.plot(epochs[:len(history[key])], history[key], marker=".", label=label)
        for name, start in (phases or [])[1:]:
            axis.axvline(start - 0.5, color="gray", linestyle="--")
            axis.annotate(name, (start - 0.5, 0.02), xycoords=("data", "axes fraction"),
                          rotation=90, color="gray")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    fig.tight_layout()
    return fig


def _confusion_png(path, y_true, proba, class_names):
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, axes = plt.subplots(1, 2, figsize=(5 + 1.2 * len(class_names), 4))
    for ax, normalize, title in ((axes[0], None, "counts"), (axes[1], "true", "row-normalised")):
        ConfusionMatrixDisplay.from_predictions(
            y_true, np.argmax(proba, axis=1), labels=list(range(len(class_names))),
            display_labels=class_names, normalize=normalize, ax=ax, colorbar=False,
            values_format=None if normalize is None else ".2f")
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_csv(path, header, rows):
    """Writes a CSV file with a header row."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _thumbnail(source_path, target_path):
    from PIL import Image

    from pipeline.images import decode_image

    try:
        import tensorflow as tf

        with tf.io.gfile.GFile(source_path, "rb") as handle:
            image = Image.fromarray(decode_image(handle.read()))
    except (OSError, ValueError):
        return False
    image.thumbnail((_THUMB_SIDE, _THUMB_SIDE))
    image.save(target_path, quality=85)
    return True


def _most_wrong_html(out_dir, rows, title):
    os.makedirs(os.path.join(out_dir, "thumbs"), exist_ok=True)
    cells = []
    for row in rows:
        thumb = f"thumbs/{row['rank']:04d}.jpg"
        has_thumb = row["path"] and _thumbnail(row["path"], os.path.join(out_dir, thumb))
        image = (f'<img src="{html.escape(thumb)}" alt="{html.escape(row["id"])}">'
                 if has_thumb else "(no image)")
        cells.append(
            f"<tr><td>{row['rank']}</td><td>{image}</td><td>{html.escape(row['id'])}</td>"
            f"<td>{html.escape(row['true'])}</td><td>{html.escape(row['predicted'])}</td>"
            f"<td>{row['confidence']:.3f}</td></tr>")
    body = ("<table><tr><th>rank</th><th>image</th><th>id</th><th>true</th><th>predicted</th>"
            "<th>confidence</th></tr>" + "".join(cells) + "</table>"
            if cells else "<p>No mistakes.</p>")
    return html_page(f"Most wrong: {title}", body)


def markdown_table(columns, rows):
    """A Markdown table of dict rows; floats get 4 significant digits, None shows as `-`."""
    def cell(value):
        return "-" if value is None else (f"{value:.4g}" if isinstance(value, float)
                                          else str(value))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(r[c]) for c in columns) + " |"
                              for r in rows])


def html_page(title, body):
    """A complete, self-contained HTML page; `title` is escaped, `body` is trusted HTML."""
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px}img{max-width:96px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{body}</body></html>")


def _index_html(report, files, title, sections=()):
    figures = [("accuracy", report["accuracy"]), ("macro F1", report["macro_f1"]),
               ("ROC-AUC", report["roc_auc"]), ("majority-class baseline",
                                               report["majority_baseline"]),
               ("examples", report["num_examples"])]
    rows = "".join(f"<tr><th>{html.escape(name)}</th><td>"
                   f"{'-' if value is None else html.escape(f'{value:.4g}')}</td></tr>"
                   for name, value in figures)
    per_class = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{v['precision']:.3f}</td><td>{v['recall']:.3f}</td>"
        f"<td>{v['f1']:.3f}</td><td>{v['support']}</td></tr>"
        for name, v in report["per_class"].items())
    links = "".join(f'<li><a href="{html.escape(f)}">{html.escape(f)}</a></li>' for f in files)
    images = "".join(f'<p><img style="max-width:100%" src="{html.escape(f)}"></p>'
                     for f in files if f.endswith(".png"))
    body = (f"<p>Run stamp: {html.escape(report['created'])}"
            f" &middot; cache key: {html.escape(str(report.get('cache_key')))}</p>"
            f"<table>{rows}</table><h2>Per class</h2><table><tr><th>class</th>"
            f"<th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{per_class}"
            f"</table>"
            + "".join(f"<h2>{heading}</h2>{content}" for heading, content in sections)
            + f"<h2>Files</h2><ul>{links}</ul>{images}")
    return html_page(title, body).replace("img{max-width:96px}", "")


def write_report(out_dir, *, ids, y_true, proba, class_names, title="Evaluation", paths=None,
                 history=None, phases=None, config=None, extra=None, top_n=50, sections=(),
                 clock=time.time):
    """Writes the full report into `out_dir` and returns the `report.json` dict.

    Args:
        out_dir: the folder (created).
        ids: example ids (n,).
        y_true: int labels (n,).
        proba: probabilities (n, num_classes).
        class_names: the class names.
        title: the page title. Defaults to `"Evaluation"`.
        paths: image file paths for thumbnails, or None. Defaults to None.
        history: training curves (`loss`, `accuracy`, `val_loss`, `val_accuracy` lists).
            Defaults to None (no curves).
        phases: [(name, first epoch)] for the curves' phase markers. Defaults to None.
        config: the job's config dict, written into `report.json`. Defaults to None.
        extra: more top-level entries for `report.json` (cache key, versions, ...).
            Defaults to None.
        top_n: rows of the most-wrong report. Defaults to `50`.
        sections: more `(heading, trusted HTML)` sections for `index.html`. Defaults to `()`.
        clock: returns the time to stamp the report with (a test seam). Defaults to `time.time`.
    """
    os.makedirs(out_dir, exist_ok=True)
    y_true, proba = np.asarray(y_true), np.asarray(proba, np.float64)
    report = {"title": title, **compute_metrics(y_true, proba, class_names),
              "class_names": list(class_names),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(clock())),
              "config": config or {}, **(extra or {})}
    files = ["confusion_matrix.png", "confusion_matrix.csv", "per_class.csv",
             "classification_report.txt", "most_wrong.csv", "most_wrong.html", "report.json"]
    _confusion_png(os.path.join(out_dir, "confusion_matrix.png"), y_true, proba, class_names)
    write_csv(os.path.join(out_dir, "confusion_matrix.csv"), ["true \\ predicted", *class_names],
               [[name, *row] for name, row in zip(class_names, report["confusion_matrix"])])
    write_csv(os.path.join(out_dir, "per_class.csv"),
               ["class", "precision", "recall", "f1", "support"],
               [[n, v["precision"], v["recall"], v["f1"], v["support"]]
                for n, v in report["per_class"].items()])
    with open(os.path.join(out_dir, "classification_report.txt"), "w") as handle:
        handle.write(metrics.classification_report(
            y_true, np.argmax(proba, axis=1), labels=list(range(len(class_names))),
            target_names=list(class_names), digits=4, zero_division=0))
    wrong = most_wrong(ids, y_true, proba, class_names, paths=paths, top_n=top_n)
    report["most_wrong"] = wrong
    write_csv(os.path.join(out_dir, "most_wrong.csv"),
               ["rank", "id", "path", "true", "predicted", "confidence"],
               [[r[k] for k in ("rank", "id", "path", "true", "predicted", "confidence")]
                for r in wrong])
    with open(os.path.join(out_dir, "most_wrong.html"), "w") as handle:
        handle.write(_most_wrong_html(out_dir, wrong, title))
    if history and history.get("loss"):
        fig = plot_curves(history, phases=phases)
        fig.savefig(os.path.join(out_dir, "curves.png"), dpi=100)
        plt.close(fig)
        files.insert(1, "curves.png")
        report["history"] = history
    with open(os.path.join(out_dir, "report.json"), "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True, default=_json_default)
    with open(os.path.join(out_dir, "index.html"), "w") as handle:
        handle.write(_index_html(report, files, title, sections))
    return report


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
