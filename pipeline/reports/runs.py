"""The reports folder of scheduled evaluations: `runs.csv`, its index page, trends and diffs.

`update_runs_index` appends a run to `runs.csv`, compares it with the previous run and the best run
on the same data fingerprint (signed deltas; a regression flag when a metric drops by more than a
threshold or accuracy is under the fail-under floor), and redraws `trend.png`,
`recall_trend.png` and `index.html`. `diff_runs` lists the images whose prediction changed
between two runs over the same images (same ids and digests); `write_changes` writes them as
`changes.csv` and a page whose entries link to their images (`pipeline.reports.cells`).
"""
import csv
import hashlib
import html
import json
import os
import tempfile

import numpy as np

from pipeline.files import atomic_output
from pipeline.reports import cells, figures
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
_PREDICTION_COLUMNS = ("id", "path", "digest", "true", "predicted", "confidence")


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


def write_predictions(run_path, rows):
    """Writes `predictions.csv` (`id`, `path`, `digest`, `true`, `predicted`, `confidence`)."""
    with open(os.path.join(run_path, "predictions.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, _PREDICTION_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_predictions_file(path):
    """The rows of a predictions CSV keyed by id."""
    with open(path, newline="") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def diff_runs(previous, current):
    """The images whose prediction changed, or None when the runs saw different images.

    Args:
        previous, current: `read_predictions_file` dicts. They must hold the same ids with the same
            digests, else the runs are not comparable and the answer is None.

    Returns:
        Rows (`id`, `path`, `true`, `before`, `after`, `confidence`, `change`), `change` being
        `fixed` (wrong before, right now), `broken` (right before, wrong now) or `changed`
        (wrong both times, differently); fixed first, then broken, then changed.
    """
    if previous is None or {k: v["digest"] for k, v in previous.items()} != {
            k: v["digest"] for k, v in current.items()}:
        return None
    order = {"fixed": 0, "broken": 1, "changed": 2}
    changes = []
    for key in sorted(current):
        before, now = previous[key], current[key]
        if before["predicted"] == now["predicted"]:
            continue
        kind = ("fixed" if now["predicted"] == now["true"] else
                "broken" if before["predicted"] == now["true"] else "changed")
        changes.append({"id": key, "path": now["path"], "true": now["true"],
                        "before": before["predicted"], "after": now["predicted"],
                        "confidence": float(now["confidence"]), "change": kind})
    return sorted(changes, key=lambda c: (order[c["change"]], c["id"]))


#: Rows per bucket of `diff_run_folders`: what it holds in memory at a time.
DIFF_BUCKET_ROWS = 50_000


def _buckets(run_path, folder, count):
    """Splits a run's `predictions.csv` into `count` CSVs by a hash of the id; their paths."""
    paths = [os.path.join(folder, f"{os.path.basename(run_path)}-{i}.csv") for i in range(count)]
    handles = [open(path, "w", newline="") for path in paths]
    writers = [csv.DictWriter(handle, _PREDICTION_COLUMNS) for handle in handles]
    for writer in writers:
        writer.writeheader()
    with open(os.path.join(run_path, "predictions.csv"), newline="") as source:
        for row in csv.DictReader(source):
            bucket = int(hashlib.sha256(row["id"].encode()).hexdigest()[:8], 16) % count
            writers[bucket].writerow(row)
    for handle in handles:
        handle.close()
    return paths


def diff_run_folders(previous_path, current_path, *, rows):
    """`diff_runs` of two runs' `predictions.csv`, holding about `DIFF_BUCKET_ROWS` rows of each
    in memory at a time: both files are split by a hash of the id, and the buckets compared in
    turn (the same ids fall in the same bucket).

    Args:
        previous_path, current_path: the two runs' folders.
        rows: the current run's row count (it sets the number of buckets).
    """
    if not os.path.isfile(os.path.join(previous_path, "predictions.csv")):
        return None
    count = max(1, -(-rows // DIFF_BUCKET_ROWS))
    with tempfile.TemporaryDirectory() as folder:
        changes = []
        for before, now in zip(_buckets(previous_path, folder, count),
                               _buckets(current_path, folder, count)):
            bucket = diff_runs(read_predictions_file(before), read_predictions_file(now))
            if bucket is None:
                return None
            changes += bucket
    order = {"fixed": 0, "broken": 1, "changed": 2}
    return sorted(changes, key=lambda c: (order[c["change"]], c["id"]))


def write_changes(run_path, changes, *, previous_run, title):
    """Writes `changes.csv` and `changes.html`: fixed and newly broken apart, each entry (true
    class, before, after) linked to a page of its images (`cells.write_change_pages`).

    Returns:
        The counts per kind of change, with `previous_run`.
    """
    columns = ["id", "path", "true", "before", "after", "confidence", "change"]
    with open(os.path.join(run_path, "changes.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(changes)
    tables = cells.write_change_pages(run_path, changes, title=title)
    counts = {kind: sum(c["change"] == kind for c in changes)
              for kind in ("fixed", "broken", "changed")}
    sections = [f"<h2>{html.escape(heading)}: {counts[kind]}</h2>"
                + tables.get(kind, "<p>No image.</p>")
                for kind, heading in (("fixed", "Fixed (wrong before, right now)"),
                                      ("broken", "Newly broken (right before, wrong now)"),
                                      ("changed", "Still wrong, differently"))]
    write_page(os.path.join(run_path, "changes.html"), f"Changed predictions: {title}",
               "".join(sections), subtitle=f"against the previous run {previous_run}")
    return {"previous_run": previous_run, **counts}
