"""The evaluation report every job writes: files a person opens, and `report.json` for scripts.

Computing, holding and drawing are separate, in the scikit-learn manner: `compute_metrics` turns
labels and probabilities into numbers; `write_report` draws them (`pipeline.reports.figures`) and
lays them out (`pipeline.reports.pages`), into one folder:

| file | what |
|---|---|
| `index.html` | headline figures first (with the majority baseline), then everything else |
| `report.json` | every figure plus the config, cache key and versions (top-level `accuracy`) |
| `confusion_matrix.png` / `.csv` | colour row-normalised, cells counts; sized for 2-100 classes |
| `most_confused.csv` | the off-diagonal pairs, most frequent first |
| `per_class.csv`, `classification_report.txt` | precision, recall, F1, support |
| `reliability.png` | reliability diagram (`ece` in `report.json`) |
| `roc_pr.png`, `thresholds.csv` | two classes: ROC and precision-recall, a threshold table |
| `curves.png` | training curves of every phase, with a marker where each phase starts |
| `most_wrong.csv` / `.html` / `.png` | mistakes ranked by the wrong prediction's confidence |
"""
import base64
import csv
import html
import json
import os
import time

import numpy as np
from PIL import Image
from sklearn import metrics

from pipeline.reports import figures as figures
from pipeline.reports import summaries
from pipeline.reports.figures import plot_curves
from pipeline.reports.pages import headline, html_page, table, thumbnail, thumbnail_grid

__all__ = ["compute_metrics", "most_wrong", "most_confused", "write_report", "plot_curves",
           "write_csv", "html_page", "markdown_table", "class_roc_auc"]

_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_GRID_PNG_TILES = 25


def class_roc_auc(y_true, proba):
    """ROC-AUC: binary for two classes, else macro one-vs-rest over the classes present.

    With every class present this equals scikit-learn's
    `roc_auc_score(y, proba, multi_class="ovr", average="macro")`; classes absent from `y_true`
    are left out instead of failing. None when fewer than two classes are present.
    """
    y_true = np.asarray(y_true)
    present = np.unique(y_true)
    if len(present) < 2:
        return None
    if proba.shape[1] == 2:
        return float(metrics.roc_auc_score(y_true, proba[:, 1]))
    return float(np.mean([metrics.roc_auc_score(y_true == c, proba[:, c]) for c in present]))


def most_confused(confusion, class_names, *, top_n=20):
    """The off-diagonal (true, predicted) pairs, most frequent first (fastai's `most_confused`)."""
    confusion = np.asarray(confusion)
    off = [(int(confusion[t, p]), t, p) for t in range(len(confusion))
           for p in range(len(confusion)) if t != p and confusion[t, p]]
    off.sort(key=lambda item: (-item[0], item[1], item[2]))
    totals = confusion.sum(axis=1)
    return [{"true": class_names[t], "predicted": class_names[p], "count": count,
             "share_of_true": count / max(int(totals[t]), 1)} for count, t, p in off[:top_n]]


def _threshold_table(y_true, scores):
    rows = []
    for threshold in _THRESHOLDS:
        predicted = scores >= threshold
        rows.append({"threshold": threshold, "predicted_positive": int(predicted.sum()),
                     "precision": float(metrics.precision_score(y_true, predicted,
                                                                zero_division=0)),
                     "recall": float(metrics.recall_score(y_true, predicted, zero_division=0))})
    return rows


def compute_metrics(y_true, proba, class_names):
    """Accuracy, per-class precision/recall/F1/support, averages, confusion matrix, ROC-AUC, ECE.

    Args:
        y_true: int labels (n,).
        proba: probabilities (n, num_classes).
        class_names: the class names.

    Returns:
        A JSON-ready dict. `majority_baseline` is the accuracy of always predicting the most
        frequent true class, the floor every number should be read against. `roc_auc` is binary
        for two classes and macro one-vs-rest beyond; `top5_accuracy` appears from 10 classes,
        `thresholds` (precision and recall at fixed thresholds) for two; `ece` always.
    """
    y_true, proba = np.asarray(y_true), np.asarray(proba, np.float64)
    y_pred = np.argmax(proba, axis=1)
    labels = list(range(len(class_names)))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    confusion = metrics.confusion_matrix(y_true, y_pred, labels=labels)
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
        "confusion_matrix": confusion.tolist(),
        "most_confused": most_confused(confusion, class_names),
        "roc_auc": class_roc_auc(y_true, proba),
        "ece": figures.reliability_bins(y_true, proba)[1],
    }
    if len(class_names) >= 10:
        result["top5_accuracy"] = float(metrics.top_k_accuracy_score(y_true, proba, k=5,
                                                                     labels=labels))
    if len(class_names) == 2:
        result["thresholds"] = _threshold_table(y_true, proba[:, 1])
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


def write_csv(path, header, rows):
    """Writes a CSV file with a header row."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def markdown_table(columns, rows):
    """A Markdown table of dict rows; floats get 4 significant digits, None shows as `-`."""
    def cell(value):
        return "-" if value is None else (f"{value:.4g}" if isinstance(value, float)
                                          else str(value))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(r[c]) for c in columns) + " |"
                              for r in rows])


def _classification_text(report):
    """`classification_report.txt`: scikit-learn's layout, from the report's per-class figures."""
    names = list(report["per_class"])
    width = max(len(name) for name in names + ["weighted avg"])
    head = f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"
    lines = [head, ""]
    for name, row in report["per_class"].items():
        lines.append(f"{name:>{width}} {row['precision']:>9.4f} {row['recall']:>9.4f} "
                     f"{row['f1']:>9.4f} {row['support']:>9}")
    total = report["num_examples"]
    lines += ["", f"{'accuracy':>{width}} {'':>9} {'':>9} {report['accuracy']:>9.4f} "
              f"{total:>9}",
              f"{'macro avg':>{width}} {report['macro_precision']:>9.4f} "
              f"{report['macro_recall']:>9.4f} {report['macro_f1']:>9.4f} {total:>9}"]
    return "\n".join(lines) + "\n"


def _write_tables(out_dir, report, class_names):
    write_csv(os.path.join(out_dir, "confusion_matrix.csv"), ["true \\ predicted", *class_names],
              [[name, *row] for name, row in zip(class_names, report["confusion_matrix"])])
    write_csv(os.path.join(out_dir, "per_class.csv"),
              ["class", "precision", "recall", "f1", "support"],
              [[n, v["precision"], v["recall"], v["f1"], v["support"]]
               for n, v in report["per_class"].items()])
    write_csv(os.path.join(out_dir, "most_confused.csv"),
              ["true", "predicted", "count", "share_of_true"],
              [list(r.values()) for r in report["most_confused"]])
    if "thresholds" in report:
        write_csv(os.path.join(out_dir, "thresholds.csv"), list(report["thresholds"][0]),
                  [list(r.values()) for r in report["thresholds"]])
    with open(os.path.join(out_dir, "classification_report.txt"), "w") as handle:
        handle.write(_classification_text(report))


def _write_figures(out_dir, report, class_names, drawing, history, phases):
    drawn = [("confusion_matrix.png", figures.confusion_figure(report["confusion_matrix"],
                                                               class_names)),
             ("reliability.png", figures.reliability_figure(*drawing["reliability"]))]
    if drawing.get("roc") is not None:
        support = [row["support"] for row in report["per_class"].values()]
        drawn.append(("roc_pr.png", figures.roc_pr_figure(
            drawing["roc"], positive=class_names[1],
            prevalence=support[1] / max(sum(support), 1))))
    if history and history.get("loss"):
        drawn.append(("curves.png", plot_curves(history, phases=phases)))
        report["history"] = history
    for name, fig in drawn:
        figures.save_figure(fig, os.path.join(out_dir, name))
    return [name for name, _ in drawn]


def _thumb(row, target):
    """Writes a most-wrong row's thumbnail (its `thumbnail`, base64 JPEG, or its file)."""
    if row.get("thumbnail"):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(base64.b64decode(row["thumbnail"]))
        return True
    return bool(row.get("path")) and thumbnail(row["path"], target)


def _write_most_wrong(out_dir, rows, title):
    write_csv(os.path.join(out_dir, "most_wrong.csv"),
              ["rank", "id", "path", "true", "predicted", "confidence"],
              [[r[k] for k in ("rank", "id", "path", "true", "predicted", "confidence")]
               for r in rows])
    tiles = []
    for row in rows:
        thumb = f"thumbs/{row['rank']:04d}.jpg"
        ok = _thumb(row, os.path.join(out_dir, thumb))
        tiles.append((thumb if ok else "", row["id"], [
            f"#{row['rank']} {row['id']}", f"true: {row['true']}",
            f"predicted: {row['predicted']} ({row['confidence']:.4f})"]))
    body = thumbnail_grid(tiles) if tiles else "<p>No mistakes.</p>"
    with open(os.path.join(out_dir, "most_wrong.html"), "w", encoding="utf-8") as handle:
        handle.write(html_page(f"Most wrong: {title}", body, subtitle=(
            "Misclassified images, the most confident wrong prediction first.")))
    images = [np.asarray(Image.open(os.path.join(out_dir, src))) if src else None
              for src, _, _ in tiles[:_GRID_PNG_TILES]]
    captions = [f"{r['true']} -> {r['predicted']}\n{r['confidence']:.3f}"
                for r in rows[:_GRID_PNG_TILES]]
    figures.save_figure(figures.thumbnail_grid_figure(images, captions),
                        os.path.join(out_dir, "most_wrong.png"))


def _subtitle(report):
    parts = [f"run {report['created']}"]
    for key, label in (("job", "job"), ("cache_key", "cache key"), ("data_name", "data")):
        if report.get(key):
            parts.append(f"{label} {report[key]}")
    return " · ".join(parts)


def _headline(report):
    baseline = f"majority baseline {report['majority_baseline']:.4f}"
    return headline([
        ("accuracy", report["accuracy"], html.escape(baseline)),
        ("macro F1", report["macro_f1"], ""), ("ROC-AUC", report["roc_auc"],
                                                "macro one-vs-rest" if len(
                                                    report["class_names"]) > 2 else ""),
        ("top-5 accuracy", report.get("top5_accuracy"), ""),
        ("ECE", report["ece"], "expected calibration error"),
        ("examples", report["num_examples"], "")])


def _figure(src, width=None):
    style = f' style="max-width:{width}px"' if width else ""
    return f'<a href="{html.escape(src)}"><img src="{html.escape(src)}"{style} alt=""></a>'


def _index_body(report, pngs, files, sections):
    per_class = table(["class", "precision", "recall", "f1", "support"],
                      [{"class": n, **v} for n, v in report["per_class"].items()])
    if len(report["class_names"]) > 20:
        pairs = table(["true", "predicted", "count", "share_of_true"], report["most_confused"])
        parts = [_headline(report), "<h2>Confusion matrix</h2>", _figure("confusion_matrix.png"),
                 "<h3>Most confused pairs</h3>", pairs, "<h2>Per class</h2>", per_class]
    else:
        parts = [_headline(report), "<h2>Confusion matrix and per class</h2>",
                 f'<div class="row"><div>{_figure("confusion_matrix.png", 560)}</div>'
                 f"<div>{per_class}</div></div>"]
    parts += [f"<h2>{heading}</h2>{content}" for heading, content in sections]
    if "roc_pr.png" in pngs:
        thresholds = table(["threshold", "predicted_positive", "precision", "recall"],
                           report["thresholds"])
        parts += ["<h2>ROC and precision-recall</h2>", _figure("roc_pr.png", 900),
                  f"<h3>Thresholds on p({html.escape(report['class_names'][1])})</h3>",
                  thresholds]
    parts += ['<h2>Calibration</h2>', _figure("reliability.png", 480)]
    if "curves.png" in pngs:
        parts += ["<h2>Training curves</h2>", _figure("curves.png", 900)]
    parts += ['<h2>Most wrong (<a href="most_wrong.html">all, with ids</a>)</h2>',
              _figure("most_wrong.png", 900) if report["most_wrong"] else "<p>No mistakes.</p>"]
    links = "".join(f'<li><a href="{html.escape(f)}">{html.escape(f)}</a></li>' for f in files)
    return "".join(parts) + f'<h2>Files</h2><ul class="files">{links}</ul>'


def _from_arrays(ids, y_true, proba, class_names, paths, top_n):
    """The report's figures, what its drawings need, and its most-wrong rows, from arrays."""
    y_true, proba = np.asarray(y_true), np.asarray(proba, np.float64)
    report = compute_metrics(y_true, proba, class_names)
    roc = (figures.roc_curves(y_true == 1, proba[:, 1])
           if len(class_names) == 2 and report["roc_auc"] is not None else None)
    drawing = {"reliability": figures.reliability_bins(y_true, proba), "roc": roc}
    return report, drawing, most_wrong(ids, y_true, proba, class_names, paths=paths,
                                       top_n=top_n)


def _from_summary(summary, rows, class_names, top_n):
    """The same from an evaluation summary (`pipeline.reports.summaries`) and the most
    confident mistakes (`{id, path, true, predicted, confidence, thumbnail}`)."""
    report = summaries.summary_metrics(summary, class_names)
    roc = (summaries.roc_pr_curves(summary)
           if len(class_names) == 2 and report["roc_auc"] is not None else None)
    drawing = {"reliability": summaries.reliability_rows(summary), "roc": roc}
    ranked = [{"rank": rank + 1, "id": row["id"], "path": row.get("path", ""),
               "true": row["true"], "predicted": row["predicted"],
               "confidence": float(row["confidence"]), "thumbnail": row.get("thumbnail")}
              for rank, row in enumerate(rows[:top_n])]
    return report, drawing, ranked


def write_report(out_dir, *, class_names, ids=None, y_true=None, proba=None, summary=None,
                 most_wrong_rows=(), title="Evaluation", paths=None, history=None, phases=None,
                 config=None, extra=None, top_n=50, sections=(), clock=time.time):
    """Writes the full report into `out_dir` and returns the `report.json` dict.

    The figures come from arrays (`ids`, `y_true`, `proba`: every image in memory, as training
    has them) or from an evaluation `summary` added up over a pass's shards (with
    `most_wrong_rows`): the same files either way.

    Args:
        out_dir: the folder (created).
        class_names: the class names.
        ids: example ids (n,).
        y_true: int labels (n,).
        proba: probabilities (n, num_classes).
        summary: instead of the arrays, a summary of `pipeline.reports.summaries`. Defaults to
            None.
        most_wrong_rows: with `summary`, the most confident mistakes, most confident first
            (`{id, path, true, predicted, confidence, thumbnail}`). Defaults to `()`.
        title: the page title: names, never absolute paths. Defaults to `"Evaluation"`.
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
    figures_, drawing, wrong = (
        _from_summary(summary, list(most_wrong_rows), class_names, top_n) if summary is not None
        else _from_arrays(ids, y_true, proba, class_names, paths, top_n))
    report = {"title": title, **figures_, "class_names": list(class_names),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(clock())),
              "config": config or {}, **(extra or {})}
    _write_tables(out_dir, report, class_names)
    pngs = _write_figures(out_dir, report, class_names, drawing, history, phases)
    _write_most_wrong(out_dir, wrong, title)
    report["most_wrong"] = [{k: v for k, v in row.items() if k != "thumbnail"} for row in wrong]
    with open(os.path.join(out_dir, "report.json"), "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True, default=_json_default)
    files = sorted(f for f in os.listdir(out_dir) if os.path.isfile(os.path.join(out_dir, f)))
    with open(os.path.join(out_dir, "index.html"), "w", encoding="utf-8") as handle:
        handle.write(html_page(title, _index_body(report, pngs, files, sections),
                               subtitle=_subtitle(report)))
    return report


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
