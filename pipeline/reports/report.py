"""`write_report`: the evaluation report's folder, drawn and laid out from its figures.

The figures come from `pipeline.reports.metrics` (arrays) or `pipeline.reports.summaries` (an
evaluation summary); they are drawn by `pipeline.reports.figures`, laid out with
`pipeline.reports.pages`, and written as the files listed in `pipeline.reports`.
"""
import base64
import html
import json
import os
import time

import numpy as np
from PIL import Image

from pipeline.reports import cells, figures, summaries
from pipeline.reports.intervals import metric_intervals
from pipeline.reports.figures import plot_curves
from pipeline.reports.metrics import compute_metrics, most_wrong
from pipeline.reports.pages import (headline, html_page, image_href, table, thumbnail,
                                    thumbnail_grid)
from pipeline.reports.tables import write_csv

__all__ = ["write_report"]

_GRID_PNG_TILES = 25
#: Absent classes named on the macro-F1 card (the rest counted): `classes_absent` has them all.
_ABSENT_NAMED = 8


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
            f"predicted: {row['predicted']} ({row['confidence']:.4f})"],
            image_href(row["path"], out_dir)))
    body = thumbnail_grid(tiles) if tiles else "<p>No mistakes.</p>"
    with open(os.path.join(out_dir, "most_wrong.html"), "w", encoding="utf-8") as handle:
        handle.write(html_page(f"Most wrong: {title}", body, subtitle=(
            "Misclassified images, the most confident wrong prediction first.")))
    images = [np.asarray(Image.open(os.path.join(out_dir, tile[0]))) if tile[0] else None
              for tile in tiles[:_GRID_PNG_TILES]]
    captions = [f"{r['true']} -> {r['predicted']}\n{r['confidence']:.3f}"
                for r in rows[:_GRID_PNG_TILES]]
    figures.save_image(figures.thumbnail_grid_image(images, captions),
                       os.path.join(out_dir, "most_wrong.png"))


def _subtitle(report):
    parts = [f"run {report['created']}"]
    for key, label in (("job", "job"), ("cache_key", "cache key"), ("data_name", "data")):
        if report.get(key):
            parts.append(f"{label} {report[key]}")
    return " · ".join(parts)


def _interval(report, metric):
    """`95 % CI low–high` of a headline metric, or `""`."""
    found = (report.get("intervals") or {}).get(metric)
    return f"95 % CI {found[0]:.4f}–{found[1]:.4f}" if found else ""


def _absent_note(report):
    """Which classes the macro averages leave out (no true image), or `""`."""
    absent = report.get("classes_absent")
    if not absent:
        return ""
    present = len(report["class_names"]) - len(absent)
    named = ", ".join(absent[:_ABSENT_NAMED]) + (
        f" and {len(absent) - _ABSENT_NAMED} more" if len(absent) > _ABSENT_NAMED else "")
    return html.escape(f"over the {present} of {len(report['class_names'])} classes with "
                       f"images; none of {named}")


def _headline(report):
    baseline = f"majority baseline {report['majority_baseline']:.4f}"
    return headline([
        ("accuracy", report["accuracy"], f"{_interval(report, 'accuracy')}<br>"
                                         f"{html.escape(baseline)}"),
        ("macro F1", report["macro_f1"], "<br>".join(
            note for note in (_interval(report, "macro_f1"), _absent_note(report)) if note)),
        ("ROC-AUC", report["roc_auc"], "macro one-vs-rest" if len(
            report["class_names"]) > 2 else ""),
        ("top-5 accuracy", report.get("top5_accuracy"), _interval(report, "top5_accuracy")),
        ("ECE", report["ece"], "expected calibration error"),
        ("examples", report["num_examples"], "")])


def _figure(src, width=None):
    style = f' style="max-width:{width}px"' if width else ""
    return f'<a href="{html.escape(src)}"><img src="{html.escape(src)}"{style} alt=""></a>'


def _matrix_section(report, links):
    """The confusion matrix (linked HTML table), the per-class table and the confused pairs."""
    names = report["class_names"]
    matrix = (cells.confusion_table(report["confusion_matrix"], names, links=links)
              + '<p class="sub">Also as <a href="confusion_matrix.png">PNG</a> and '
                '<a href="confusion_matrix.csv">CSV</a>.</p>')
    per_class = cells.class_table(report["per_class"], names, links=links)
    if len(names) > 20:
        pairs = cells.pairs_table(report["most_confused"], names, links=links)
        return ["<h2>Confusion matrix</h2>", matrix, "<h3>Most confused pairs</h3>", pairs,
                "<h2>Per class</h2>", per_class]
    return ["<h2>Confusion matrix and per class</h2>",
            f'<div class="row"><div>{matrix}</div><div>{per_class}</div></div>']


def _index_body(report, pngs, files, sections, links, lead=()):
    parts = [f"<h2>{heading}</h2>{content}" for heading, content in lead]
    parts += [_headline(report), *_matrix_section(report, links)]
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
              _figure("most_wrong.png") if report["most_wrong"] else "<p>No mistakes.</p>"]
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


def _cell_links(out_dir, class_names, title, *, summary, arrays):
    """The `cells.Links` of the matrix: pages written from the arrays where `paths` are known,
    found in `out_dir/cells/` beside a summary (`jobs.evaluate` writes them first), else None."""
    if summary is not None:
        return cells.read_links(out_dir, class_names)
    ids, y_true, proba, paths = arrays
    if paths is None:
        return None
    return cells.write_cell_pages(out_dir, cells.array_rows(ids, y_true, proba, class_names,
                                                            paths),
                                  class_names=class_names, title=title)


def write_report(out_dir, *, class_names, ids=None, y_true=None, proba=None, summary=None,
                 most_wrong_rows=(), title="Evaluation", paths=None, history=None, phases=None,
                 config=None, extra=None, top_n=50, sections=(), lead=(), clock=time.time):
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
        paths: image file paths for thumbnails and the matrix's image pages
            (`pipeline.reports.cells`; `""` for an unknown file), or None (the matrix without
            links). Defaults to None.
        history: training curves (`loss`, `accuracy`, `val_loss`, `val_accuracy` lists).
            Defaults to None (no curves).
        phases: [(name, first epoch)] for the curves' phase markers. Defaults to None.
        config: the job's config dict, written into `report.json`. Defaults to None.
        extra: more top-level entries for `report.json` (cache key, versions, ...).
            Defaults to None.
        top_n: rows of the most-wrong report. Defaults to `50`.
        sections: more `(heading, trusted HTML)` sections for `index.html`. Defaults to `()`.
        lead: `(heading, trusted HTML)` sections placed first on `index.html`, above the
            figures (what the report is of, when the title cannot say it all). Defaults to `()`.
        clock: returns the time to stamp the report with (a test seam). Defaults to `time.time`.
    """
    os.makedirs(out_dir, exist_ok=True)
    figures_, drawing, wrong = (
        _from_summary(summary, list(most_wrong_rows), class_names, top_n) if summary is not None
        else _from_arrays(ids, y_true, proba, class_names, paths, top_n))
    top5 = figures_.get("top5_accuracy")
    figures_["intervals"] = metric_intervals(
        figures_["confusion_matrix"],
        top5_correct=None if top5 is None else round(top5 * figures_["num_examples"]))
    report = {"title": title, **figures_, "class_names": list(class_names),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(clock())),
              "config": config or {}, **(extra or {})}
    _write_tables(out_dir, report, class_names)
    pngs = _write_figures(out_dir, report, class_names, drawing, history, phases)
    _write_most_wrong(out_dir, wrong, title)
    links = _cell_links(out_dir, class_names, title, summary=summary,
                        arrays=(ids, y_true, proba, paths))
    report["most_wrong"] = [{k: v for k, v in row.items() if k != "thumbnail"} for row in wrong]
    with open(os.path.join(out_dir, "report.json"), "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True, default=_json_default)
    files = sorted(f for f in os.listdir(out_dir) if os.path.isfile(os.path.join(out_dir, f)))
    with open(os.path.join(out_dir, "index.html"), "w", encoding="utf-8") as handle:
        handle.write(html_page(title, _index_body(report, pngs, files, sections, links, lead),
                               subtitle=_subtitle(report)))
    return report


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
