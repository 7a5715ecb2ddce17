"""The reports folder of scheduled evaluations: `runs.csv`, its index page and trends.

`update_runs_index` appends a run to `runs.csv`, compares it with the previous run and the best run
on the same data fingerprint (signed deltas; a regression flag when a metric drops by more than a
threshold or accuracy is under the fail-under floor), and redraws `trend.png`,
`recall_trend.png` and `index.html`. What changed between two runs' predictions is
`pipeline.reports.changes` (re-exported here).
"""
import csv
import html
import json
import os

import numpy as np

from pipeline.files import atomic_output
from pipeline.reports import figures
from pipeline.reports.changes import (diff_run_folders, diff_runs, read_predictions_file,
                                      write_changes, write_predictions)
from pipeline.reports.pages import delta, headline, table, write_page

__all__ = ["BLESSED", "RUNS_COLUMNS", "read_runs", "compare_runs", "update_runs_index",
           "display_name", "write_predictions", "read_predictions_file", "diff_runs",
           "diff_run_folders", "write_changes"]

#: The reports folder's record of the model that passed review (`pipeline.evaluation.gate`).
BLESSED = "blessed.json"

RUNS_COLUMNS = ("time", "model", "data", "data_fingerprint", "accuracy", "macro_f1", "roc_auc",
                "majority_baseline", "num_examples", "num_skipped", "embedded", "reused",
                "run_dir", "top5_accuracy", "ece", "fail_under", "regression", "data_name",
                "accuracy_low", "accuracy_high", "macro_f1_low", "macro_f1_high", "baseline",
                "verdict", "accuracy_difference", "accuracy_difference_low",
                "accuracy_difference_high", "mcnemar_p", "requirements_passed", "blessed")
#: Compared metrics and whether lower is better.
_COMPARED = (("accuracy", False), ("macro_f1", False), ("roc_auc", False),
             ("top5_accuracy", False), ("ece", True))
_GUARDED = ("accuracy", "macro_f1", "roc_auc", "top5_accuracy")
_TABLE_ROWS = 100


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


def read_runs(reports_dir):
    """The rows of `runs.csv` (oldest first), or [] when there is none."""
    path = os.path.join(reports_dir, "runs.csv")
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as handle:
        return [{k: (v or "") for k, v in row.items() if k is not None}
                for row in csv.DictReader(handle)]


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
    """The last row against the previous and the best (by accuracy) on its data fingerprint.

    Args:
        rows: runs.csv rows, oldest first; the last is the run to judge.
        threshold: a drop larger than this in a guarded metric (accuracy, macro-F1, ROC-AUC,
            top-5) since the previous run is a regression. Defaults to `0.01`.
        fail_under: accuracy under this is a regression too, or None. Defaults to `None`.

    Returns:
        A dict: `previous_run`, `best_run` (run folders or None), `vs_previous`, `vs_best`
        (signed deltas, latest minus other), `regression` (bool) and `reasons` (sentences).
    """
    latest = rows[-1]
    same = [r for r in rows[:-1] if r["data_fingerprint"] == latest["data_fingerprint"]]
    previous = same[-1] if same else None
    best = max(same, key=lambda r: _number(r, "accuracy") or 0.0) if same else None
    result = {"previous_run": previous and previous["run_dir"],
              "best_run": best and best["run_dir"],
              "vs_previous": _deltas(latest, previous) if previous else {},
              "vs_best": _deltas(latest, best) if best else {}}
    reasons = [f"{metric} fell by {-change:.4f} since the previous run (threshold {threshold})"
               for metric, change in result["vs_previous"].items()
               if metric in _GUARDED and change < -threshold]
    accuracy = _number(latest, "accuracy")
    if fail_under is not None and accuracy < fail_under:
        reasons.append(f"accuracy {accuracy:.4f} is under the fail-under floor {fail_under}")
    return {**result, "regression": bool(reasons), "reasons": reasons}


def _write_rows(reports_dir, rows):
    path = os.path.join(reports_dir, "runs.csv")
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, RUNS_COLUMNS, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _recall_history(reports_dir, rows):
    latest = rows[-1]
    same = [r for r in rows if r["data_fingerprint"] == latest["data_fingerprint"]]
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
    figures.save_figure(figures.trend_figure(rows, fail_under=fail_under, name=display_name),
                        os.path.join(reports_dir, "trend.png"))
    times, names, recalls = _recall_history(reports_dir, rows)
    if times:
        figures.save_figure(figures.recall_trend_figure(times, names, recalls),
                            os.path.join(reports_dir, "recall_trend.png"))


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
        banner = ('<p class="ok">No regression against the previous run on the same data '
                  f"(threshold {threshold}).</p>")
    shown = [{**{m: _number(row, m) for m in ("accuracy", "macro_f1", "roc_auc",
                                              "majority_baseline")},
              "time": row["time"][:16].replace("T", " "),
              "model": display_name(row["model"]),
              "data": row.get("data_name") or display_name(row["data"]),
              "images": int(_number(row, "num_examples") or 0),
              "regression": "yes" if row.get("regression") else "",
              "vs baseline": row.get("verdict", ""),
              "blessed": "yes" if row.get("blessed") == "True" else "",
              "report": f'<a href="{html.escape(row["run_dir"])}/index.html">report</a>'}
             for row in reversed(rows[-_TABLE_ROWS:])]
    runs = table(["time", "model", "data", "accuracy", "macro_f1", "roc_auc",
                  "majority_baseline", "images", "regression", "vs baseline", "blessed",
                  "report"], shown,
                 trusted=("report",))
    recall = '<h2>Per-class recall</h2><img src="recall_trend.png" alt="">' if has_recall else ""
    more = (f"<p>The latest {_TABLE_ROWS} of {len(rows)} runs; all are in "
            '<a href="runs.csv">runs.csv</a>.</p>' if len(rows) > _TABLE_ROWS else "")
    return (banner + blessed + _cards(rows[-1], comparison)
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
    _draw(reports_dir, rows, fail_under)
    latest = rows[-1]
    write_page(os.path.join(reports_dir, "index.html"), "Evaluation runs",
               _index_body(rows, comparison, threshold,
                           os.path.isfile(os.path.join(reports_dir, "recall_trend.png")),
                           _blessed_line(reports_dir)),
               subtitle=f"{len(rows)} runs · latest {latest['time']}: "
                        f"{display_name(latest['model'])} on "
                        f"{latest.get('data_name') or display_name(latest['data'])}")
    return comparison
