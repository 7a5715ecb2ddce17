"""The reports folder of scheduled evaluations: `runs.csv`, its index page and trends.

`update_runs_index` appends a run to `runs.csv`, compares it with the previous run and the best run
of its series (signed deltas; a regression flag when a metric drops by more than a threshold or
accuracy is under the fail-under floor), and redraws `trend.png`, `recall_trend.png` and
`index.html`. What changed between two runs' predictions is `pipeline.reports.changes`
(re-exported here).

A series is one model name on one data name (`series_key`): several models and data sets may
share a reports folder, and only runs of one series are compared or drawn as one line. The data's
fingerprint is not part of it, so that a weekly run over a growing hold-out folder stays one
series; a comparison of the images themselves (the changes diff) also needs the same fingerprint
(`previous_run(..., same_images=True)`).
"""
import csv
import html
import json
import os
import warnings

import numpy as np

from pipeline.files import atomic_output
from pipeline.reports import figures
from pipeline.reports.changes import (diff_run_folders, diff_runs, read_predictions_file,
                                      write_changes, write_predictions)
from pipeline.reports.pages import delta, headline, table, write_page

__all__ = ["BLESSED", "RUNS_COLUMNS", "read_runs", "series_key", "series_label", "previous_run",
           "compare_runs", "update_runs_index", "display_name", "write_predictions",
           "read_predictions_file", "diff_runs", "diff_run_folders", "write_changes"]

#: The reports folder's record of the model that passed review (`pipeline.evaluation.gate`).
BLESSED = "blessed.json"

RUNS_COLUMNS = ("time", "model", "data", "data_fingerprint", "accuracy", "macro_f1", "roc_auc",
                "majority_baseline", "num_examples", "num_skipped", "embedded", "reused",
                "run_dir", "top5_accuracy", "ece", "fail_under", "regression", "data_name",
                "accuracy_low", "accuracy_high", "macro_f1_low", "macro_f1_high", "baseline",
                "verdict", "accuracy_difference", "accuracy_difference_low",
                "accuracy_difference_high", "mcnemar_p", "requirements_passed", "blessed")
#: The columns of `RUNS_COLUMNS` that hold text; every other one holds a number or nothing.
_TEXT_COLUMNS = frozenset({"time", "model", "data", "data_fingerprint", "run_dir", "regression",
                           "data_name", "baseline", "verdict", "requirements_passed", "blessed"})
#: Compared metrics and whether lower is better.
_COMPARED = (("accuracy", False), ("macro_f1", False), ("roc_auc", False),
             ("top5_accuracy", False), ("ece", True))
_GUARDED = ("accuracy", "macro_f1", "roc_auc", "top5_accuracy")
_TABLE_ROWS = 100
#: Differences within this of a threshold are float rounding (0.86 - 0.85 = 0.010000000000000009).
_TOLERANCE = 1e-9


def display_name(path):
    """A model's or data set's name for titles: the folder or file name, never a full path.

    `runs/finetune/model.keras` -> `finetune`; `/data/smiles/` -> `smiles`;
    `tfds:beans:test` -> `beans (test)`; `cache/abc:val` -> `abc (val)`.
    """
    path = str(path)
    if path.startswith("tfds:"):
        name, _, split = path[len("tfds:"):].partition(":")
        return f"{name} ({split})" if split else name
    root, split = path, ""
    if path.rsplit(":", 1)[-1] in ("train", "val", "test"):
        root, split = path.rsplit(":", 1)
    parts = [p for p in root.replace("\\", "/").split("/") if p]
    name = parts[-1] if parts else root
    if name.endswith(".keras") and len(parts) > 1:
        name = parts[-2]
    return f"{name} ({split})" if split else name


def read_runs(reports_dir, *, warn=False):
    """The rows of `runs.csv` (oldest first), or [] when there is none.

    A figure that is not a number (a row edited by hand: `accuracy=notanumber`) is read as
    empty: that run is left out of the comparisons and trends of that figure, the folder goes on
    working, and the value is dropped when `runs.csv` is next written. With `warn`, each such
    value is named in a one-line warning (the file, the row, the value): an evaluation asks once,
    before its pass (`pipeline.evaluation.record.prepare_folder`).
    """
    path = os.path.join(reports_dir, "runs.csv")
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as handle:
        rows = [{k: (v or "") for k, v in row.items() if k is not None}
                for row in csv.DictReader(handle)]
    for line, row in enumerate(rows, start=2):
        for key in [k for k in RUNS_COLUMNS
                    if k not in _TEXT_COLUMNS and row.get(k, "") not in ("", "None")]:
            try:
                float(row[key])
            except ValueError:
                if warn:
                    warnings.warn(f"{path}: line {line} (run {row.get('run_dir') or 'unnamed'})"
                                  f": {key} {row[key]!r} is not a number; read as empty (that "
                                  f"run is left out of comparisons and trends of {key})",
                                  stacklevel=2)
                row[key] = ""
    return rows


def series_key(row):
    """The series a runs.csv row belongs to: `(model name, data name)`.

    Runs of one series are compared (`compare_runs`) and drawn as one line; the names are
    `display_name`s, so a model retrained into the same folder, or a hold-out folder that grows,
    stays one series.
    """
    return display_name(row["model"]), row.get("data_name") or display_name(row["data"])


def series_label(row):
    """A series as legends and headings name it: `finetune on flowers`."""
    return "{} on {}".format(*series_key(row))


def previous_run(rows, row, *, same_images=False):
    """The last of `rows` in `row`'s series, or None.

    Args:
        rows: runs.csv rows, oldest first (without `row` itself).
        row: the run (`model`, `data`, `data_name`, `data_fingerprint`).
        same_images: only runs with `row`'s data fingerprint, as a diff of predictions needs.
            Defaults to `False`.
    """
    key = series_key(row)
    same = [r for r in rows if series_key(r) == key
            and (not same_images or r["data_fingerprint"] == row["data_fingerprint"])]
    return same[-1] if same else None


def _number(row, metric):
    value = (row or {}).get(metric, "")
    return None if value in ("", None, "None") else float(value)


def _deltas(latest, other):
    result = {}
    for metric, _ in _COMPARED:
        a, b = _number(latest, metric), _number(other, metric)
        if a is not None and b is not None:
            result[metric] = a - b
    return result


def compare_runs(rows, *, threshold=0.01, fail_under=None):
    """The last row against the previous and the best (by accuracy) run of its series.

    Args:
        rows: runs.csv rows, oldest first; the last is the run to judge.
        threshold: a drop larger than this in a guarded metric (accuracy, macro-F1, ROC-AUC,
            top-5) since the previous run is a regression; a drop equal to it (to 1e-9) is not.
            Defaults to `0.01`.
        fail_under: accuracy under this is a regression too, or None. Defaults to `None`.

    Returns:
        A dict: `previous_run`, `best_run` (run folders or None), `vs_previous`, `vs_best`
        (signed deltas, latest minus other), `regression` (bool) and `reasons` (sentences).
    """
    latest = rows[-1]
    same = [r for r in rows[:-1] if series_key(r) == series_key(latest)]
    previous = same[-1] if same else None
    best = max(same, key=lambda r: _number(r, "accuracy") or 0.0) if same else None
    result = {"previous_run": previous and previous["run_dir"],
              "best_run": best and best["run_dir"],
              "vs_previous": _deltas(latest, previous) if previous else {},
              "vs_best": _deltas(latest, best) if best else {}}
    reasons = [f"{metric} fell by {-change:.4f} since the previous run (threshold {threshold})"
               for metric, change in result["vs_previous"].items()
               if metric in _GUARDED and -change > threshold + _TOLERANCE]
    accuracy = _number(latest, "accuracy")
    if fail_under is not None and accuracy < fail_under - _TOLERANCE:
        reasons.append(f"accuracy {accuracy:.4f} is under the fail-under floor {fail_under}")
    return {**result, "regression": bool(reasons), "reasons": reasons}


def _write_rows(reports_dir, rows):
    path = os.path.join(reports_dir, "runs.csv")
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, RUNS_COLUMNS, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _recall_history(reports_dir, rows):
    """The per-class recall of each run of the latest run's series."""
    same = [r for r in rows if series_key(r) == series_key(rows[-1])]
    times, recalls, names = [], [], None
    for row in same:
        path = os.path.join(reports_dir, row["run_dir"], "report.json")
        if not os.path.isfile(path):
            continue
        with open(path) as handle:
            per_class = json.load(handle)["per_class"]
        names = names or list(per_class)
        times.append(row["time"])
        recalls.append([per_class.get(n, {}).get("recall", np.nan) for n in names])
    return times, names, recalls


def _draw(reports_dir, rows, fail_under):
    """Draws `trend.png` and the latest series' `recall_trend.png`; whether there is one."""
    figures.save_figure(figures.trend_figure(rows, fail_under=fail_under, series=series_key),
                        os.path.join(reports_dir, "trend.png"))
    times, names, recalls = _recall_history(reports_dir, rows)
    recall_path = os.path.join(reports_dir, "recall_trend.png")
    if times:
        figures.save_figure(figures.recall_trend_figure(times, names, recalls), recall_path)
    elif os.path.isfile(recall_path):
        os.remove(recall_path)  # another series' chart
    return bool(times)


def _cards(latest, comparison):
    cards = []
    for metric, lower in _COMPARED:
        value = _number(latest, metric)
        notes = [f"{label} {delta(comparison[key].get(metric), lower_is_better=lower)}"
                 for key, label in (("vs_previous", "vs previous"), ("vs_best", "vs best"))
                 if comparison[key].get(metric) is not None]
        if metric == "accuracy":
            notes.append(f"baseline {_number(latest, 'majority_baseline'):.4f}")
        cards.append((metric.replace("_", " "), value, " · ".join(notes)))
    return headline(cards)


def _blessed_line(reports_dir):
    """Which model is blessed (`jobs.evaluate --bless`) and since when, or `""`."""
    path = os.path.join(reports_dir, BLESSED)
    if not os.path.isfile(path):
        return '<p>No model is blessed here yet (<code>jobs.evaluate --bless</code>).</p>'
    with open(path) as handle:
        blessed = json.load(handle)
    return (f'<p class="ok">Blessed: <strong>{html.escape(display_name(blessed["model"]))}'
            f'</strong> since {html.escape(blessed["blessed_at"][:16].replace("T", " "))} '
            f'(<a href="{html.escape(blessed["evaluation"])}/index.html">the evaluation that '
            "passed</a>).</p>")


def _index_body(rows, comparison, threshold, has_recall, blessed=""):
    if comparison["regression"]:
        banner = ('<p class="flag">Regression: '
                  + html.escape("; ".join(comparison["reasons"])) + "</p>")
    else:
        banner = ('<p class="ok">No regression against the previous run of '
                  f"{html.escape(series_label(rows[-1]))} (threshold {threshold}).</p>")
    shown = [{"accuracy": _number(row, "accuracy"), "macro F1": _number(row, "macro_f1"),
              "ROC AUC": _number(row, "roc_auc"),
              "majority baseline": _number(row, "majority_baseline"),
              "time": f'<span class="w">{html.escape(row["time"][:16].replace("T", " "))}'
                      "</span>",
              "model": display_name(row["model"]),
              "data": row.get("data_name") or display_name(row["data"]),
              "images": int(_number(row, "num_examples") or 0),
              "regression": "yes" if row.get("regression") else "",
              "verdict": row.get("verdict", ""),
              "blessed": "yes" if row.get("blessed") == "True" else "",
              "report": f'<a href="{html.escape(row["run_dir"])}/index.html">report</a>'}
             for row in reversed(rows[-_TABLE_ROWS:])]
    runs = table(["time", "report", "model", "data", "accuracy", "macro F1", "ROC AUC",
                  "majority baseline", "images", "regression", "verdict", "blessed"], shown,
                 trusted=("time", "report"))
    recall = (f"<h2>Per-class recall: {html.escape(series_label(rows[-1]))}</h2>"
              '<img src="recall_trend.png" alt="">' if has_recall else "")
    more = (f"<p>The latest {_TABLE_ROWS} of {len(rows)} runs; all are in "
            '<a href="runs.csv">runs.csv</a>.</p>' if len(rows) > _TABLE_ROWS else "")
    return (banner + blessed + f"<h2>Latest: {html.escape(series_label(rows[-1]))}</h2>"
            + _cards(rows[-1], comparison)
            + '<h2>Trend</h2><img src="trend.png" alt="">' + recall + "<h2>Runs</h2>" + more
            + runs)


def update_runs_index(reports_dir, row, *, threshold=0.01, fail_under=None):
    """Appends `row` to runs.csv, judges it, and redraws the trend charts and `index.html`.

    Call it under the reports folder's lock.

    Args:
        reports_dir: the reports folder.
        row: the run's `RUNS_COLUMNS` values (missing ones are left empty).
        threshold: see `compare_runs`. Defaults to `0.01`.
        fail_under: see `compare_runs`; drawn on the trend chart. Defaults to `None`.

    Returns:
        `compare_runs`' dict for the new run.
    """
    rows = read_runs(reports_dir)
    rows.append({k: "" if row.get(k) is None else str(row[k]) for k in RUNS_COLUMNS})
    comparison = compare_runs(rows, threshold=threshold, fail_under=fail_under)
    rows[-1]["regression"] = "; ".join(comparison["reasons"])
    _write_rows(reports_dir, rows)
    has_recall = _draw(reports_dir, rows, fail_under)
    latest = rows[-1]
    write_page(os.path.join(reports_dir, "index.html"), "Evaluation runs",
               _index_body(rows, comparison, threshold, has_recall, _blessed_line(reports_dir)),
               subtitle=f"{len(rows)} runs · latest {latest['time']}: {series_label(latest)}")
    return comparison
