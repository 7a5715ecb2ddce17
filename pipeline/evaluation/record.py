"""A reports folder's record of its runs: the lock, the runs.csv row, the blessing committed with
it, the repair of what a kill left.

An evaluation (`pipeline.evaluation.evaluate`) publishes its run folder whole
(`pipeline.publish`); then, under the reports folder's lock (`locked`), `commit` writes the run's
blessing (`blessed.json`), then its runs.csv row and the index. The published run folder is the
commit point: its `report.json` holds everything the rest is made of, so the next evaluation,
under the lock and before its pass (`prepare_folder`), records a published run that runs.csv
lacks (a kill between publishing and recording: `record_unrecorded`), and removes the staging
folders of dead evaluations. Damaged shared files do not lock the folder out: a `blessed.json`
that is not a blessing record is set aside, and a figure in runs.csv that is not a number is read
as empty, each with a one-line warning.

Example:
    >>> prepare_folder("reports")
    >>> with locked("reports"):
    ...     record_unrecorded("reports")
"""
import contextlib
import fcntl
import json
import os
import threading
import warnings

from pipeline.evaluation import blessing, review
from pipeline.publish import PUBLISHED, remove_dead_staging, verify_published
from pipeline.reports import runs as report_runs
from pipeline.reports.runs import RUNS_COLUMNS

__all__ = ["locked", "comparison", "commit", "record_unrecorded", "prepare_folder"]

_HELD = threading.local()


@contextlib.contextmanager
def locked(reports_dir):
    """The reports folder's lock (`.lock`), re-entrant within a thread."""
    held = _HELD.__dict__.setdefault("folders", set())
    key = os.path.realpath(reports_dir)
    if key in held:
        yield
        return
    with open(os.path.join(reports_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            fcntl.flock(lock, fcntl.LOCK_UN)


def _record_run(reports_dir, row, *, threshold, fail_under):
    """Appends the run to runs.csv and redraws the index under the lock; returns the comparison."""
    with locked(reports_dir):
        return report_runs.update_runs_index(reports_dir, row, threshold=threshold,
                                             fail_under=fail_under)


def _runs_row(report, run_dir):
    """The runs.csv row of a run, from its report (as its `report.json` holds it)."""
    return {**report, "time": report["created"], "model": report["config"]["model"],
            "data": report["config"]["data"], "run_dir": run_dir,
            **review.runs_fields(report, report["baseline_comparison"],
                                 report["requirements"], report["blessed"])}


def comparison(reports_dir, report, run_dir):
    """The run against the previous and the best run of its series, as recording it will
    judge it (`report_runs.compare_runs`); call it under the lock."""
    row = _runs_row(report, run_dir)
    rows = report_runs.read_runs(reports_dir) + [
        {k: "" if row.get(k) is None else str(row[k]) for k in RUNS_COLUMNS}]
    return report_runs.compare_runs(rows, threshold=report["regression_threshold"],
                                    fail_under=report["fail_under"])


def commit(reports_dir, run_dir, report):
    """Under the lock, once the run folder is published: its blessing (`blessed.json`), then
    its runs.csv row and the index; returns the comparison."""
    if report.get("blessed"):
        blessing.write_blessing(reports_dir, report["blessed"])
    return _record_run(reports_dir, _runs_row(report, run_dir),
                       threshold=report["regression_threshold"], fail_under=report["fail_under"])


def record_unrecorded(reports_dir):
    """Commits the published run folders that runs.csv lacks (an evaluation killed between
    publishing its folder and recording it), oldest first. Call it under the lock."""
    recorded = {row["run_dir"] for row in report_runs.read_runs(reports_dir)}
    for name in sorted(os.listdir(reports_dir)):
        path = os.path.join(reports_dir, name)
        if name in recorded or not os.path.isfile(os.path.join(path, PUBLISHED)):
            continue
        try:
            if verify_published(path, digests=False)["job"] != "evaluate":
                continue
            with open(os.path.join(path, "report.json")) as handle:
                report = json.load(handle)
            commit(reports_dir, name, report)
        except (ValueError, KeyError, OSError) as err:
            warnings.warn(f"{path}: an evaluation that runs.csv lacks and that cannot be "
                          f"recorded ({err}); left out of runs.csv and the index (remove the "
                          "folder to silence this)", stacklevel=2)
            continue
        warnings.warn(f"{path}: an evaluation that was stopped before it was recorded; now "
                      "recorded in runs.csv", stacklevel=2)


def prepare_folder(reports_dir):
    """Before the pass, under the lock: the staging folders of dead evaluations removed, a
    damaged `blessed.json` set aside, runs.csv's values that are not numbers named
    (`report_runs.read_runs`) and the published runs it lacks recorded, so that the baseline and
    the comparisons read a whole folder. A folder that is not there is left alone."""
    if not os.path.isdir(reports_dir):
        return
    with locked(reports_dir):
        for folder in (reports_dir, os.path.join(reports_dir, blessing.COPIES)):
            remove_dead_staging(folder)
        blessing.set_aside_damaged(reports_dir)
        report_runs.read_runs(reports_dir, warn=True)  # its bad values named once
        record_unrecorded(reports_dir)
