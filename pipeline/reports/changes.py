"""What changed between two evaluations of the same images: `predictions.csv`, the diff, and
the changes page.

`write_predictions` writes a run's rows; `diff_runs` lists the images whose prediction changed
between two runs over the same images (same ids and digests), and `diff_run_folders` does it a
bucket of ids at a time (hashed by id), so memory does not follow the number of images;
`write_changes` writes them as `changes.csv` and a page whose entries link to their images
(`pipeline.reports.cells`).
"""
import csv
import hashlib
import html
import os
import tempfile

from pipeline.reports import cells
from pipeline.reports.pages import write_page

__all__ = ["write_predictions", "read_predictions_file", "diff_runs", "diff_run_folders",
           "write_changes"]

_PREDICTION_COLUMNS = ("id", "path", "digest", "true", "predicted", "confidence")


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
