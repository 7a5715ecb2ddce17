"""Scheduled evaluation: one model on one data set, as a time-stamped run in a reports folder.

`evaluate` scores a fine-tuned `model.keras`, a head (with its cache's backbone) or an export on
a class folder, a TFDS split or a cache's split, writes the full report into
`<reports>/<stamp>-<model>-<id>/`, and records the run in `<reports>/runs.csv`, whose trend plot
and `index.html` it redraws, under a file lock so that concurrent runs never corrupt them.

A kill at any moment leaves the reports folder whole. The run folder is written in a staging
folder and published whole (`pipeline.publish`): it appears complete or not at all. Then, under
the lock, the run is committed (`pipeline.evaluation.record`: its blessing, its runs.csv row,
the index); the next evaluation, before its pass, repairs what a kill left. A blessed model that
is gone leaves the run without a baseline, with a one-line warning.

The predictions come from the predict job's pass (`pipeline.prediction`), on any Beam runner:
each shard step writes its evaluation summary (confusion counts, calibration bins, score
histograms, its most confident mistakes with thumbnails), and the report is drawn from their
sum. The rows are kept in `<reports>/predictions/`, so an image already scored by the same
model is copied, not run again; a head also takes its cache's embeddings for images the cache
holds (by content digest), so only images never seen before go through the backbone.

A review (`pipeline.evaluation.review`, `gate`, `slices`) compares the model with a baseline on
the same images, checks the requirements on all images and on each slice, and blesses it
(`pipeline.evaluation.blessing`).
"""
import contextlib
import functools
import html
import json
import os
import re
import time
import uuid

from pipeline import reports
from pipeline.evaluation import blessing, gate, record, review, slices
from pipeline.evaluation.inputs import data_name, eval_inputs
from pipeline.files import write_json_atomic
from pipeline.prediction.job import PredictConfig, run_predict
from pipeline.prediction.models import open_model
from pipeline.prediction.shard import read_rows
from pipeline.publish import published_folder
from pipeline.reports import cells
from pipeline.reports import runs as report_runs
from pipeline.reports.runs import RUNS_COLUMNS, display_name
from pipeline.reports.summaries import summary_metrics
from pipeline.validation import check_apart

__all__ = ["RUNS_COLUMNS", "PREDICTIONS_DIR", "eval_inputs", "evaluate"]

#: Where an evaluation's rows are kept, under the reports folder (reused by content digest).
PREDICTIONS_DIR = "predictions"


def _slug(path):
    name = os.path.basename(os.path.normpath(path)).replace(".keras", "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "model"


def _previous_run(reports_dir, run):
    """The run folder of the last run of `run`'s series over the same images, or None."""
    previous = report_runs.previous_run(report_runs.read_runs(reports_dir), run,
                                        same_images=True)
    return previous and previous["run_dir"]


def _changes(reports_dir, run_path, predictions, run, title, *, rows):
    """Writes this run's `predictions.csv` (streamed from `predictions`) into `run_path` (its
    staging folder) and diffs it against the previous run of its series (`run`: model, data,
    data name and fingerprint) on the same images, a bucket of ids at a time; None when there
    is none or it is not comparable."""
    previous = _previous_run(reports_dir, run)
    report_runs.write_predictions(run_path, predictions)
    if previous is None:
        return None
    changes = report_runs.diff_run_folders(os.path.join(reports_dir, previous), run_path,
                                           rows=rows)
    if changes is None:
        return None
    return report_runs.write_changes(run_path, changes, previous_run=previous, title=title)


def _changes_section(summary):
    if summary is None:
        return []
    text = (f"{summary['fixed']} fixed, {summary['broken']} newly broken, {summary['changed']} "
            f"wrong in another way since {summary['previous_run']}")
    return [("Changes since the previous run",
             f'<p>{html.escape(text)}: <a href="changes.html">the images</a>, '
             '<a href="changes.csv">changes.csv</a>.</p>')]


def _amend_report(run_path, **entries):
    """Adds `entries` to the run's `report.json` (in its staging folder), rewritten
    atomically; returns the whole report."""
    path = os.path.join(run_path, "report.json")
    with open(path) as handle:
        saved = {**json.load(handle), **entries}
    write_json_atomic(path, saved)
    return saved


def _prediction_rows(out_dir, manifest):
    """`{id, path, digest, true, predicted, confidence}` of every scored image, shard by shard."""
    for shard in manifest["shards"]:
        for row in read_rows(os.path.join(out_dir, shard["file"])):
            if row["true_label"] in manifest["class_names"]:
                yield {"id": row["id"], "path": row["path"], "digest": row["digest"],
                       "true": row["true_label"], "predicted": row["label"],
                       "confidence": row["probability"]}


def _score(model_path, data, inputs, predictions_dir, *, top_n, pipeline_options,
           show_progress, desc):
    """The predict pass of one model over the inputs (rows reused by digest); `desc` labels
    its progress."""
    result = run_predict(PredictConfig(model=model_path, data=data, out=predictions_dir,
                                       labels_from_folders=True, cached_embeddings=True,
                                       most_wrong=top_n),
                         inputs=inputs, pipeline_options=pipeline_options,
                         show_progress=show_progress, page=False, desc=desc)
    if result.summary["evaluation"] is None:
        raise ValueError(f"data {data!r}: no readable image to evaluate")
    return result


def evaluate(model_path, data, reports_dir, *, top_n=50, regression_threshold=0.01,
             fail_under=None, clock=time.time, pipeline_options=None, show_progress=False,
             predictions_dir=None, follow_links="no", baseline=None, requirements=(),
             bless=False, slice_by=(), slices_csv=None):
    """Evaluates a model on a data set and records the run; returns the report dict.

    Args:
        model_path: a fine-tuned `model.keras` (or its folder), a head folder, or a folder
            from `jobs.export`.
        data: a class folder, `tfds:NAME[:SPLIT]`, or a cache folder `[:SPLIT]`.
        reports_dir: the reports folder (`<stamp>-<model>/` runs, `runs.csv`, `index.html`,
            `trend.png`, `recall_trend.png`, `predictions/`).
        top_n: rows of the most-wrong report. Defaults to `50`.
        regression_threshold: a drop larger than this in accuracy, macro-F1, ROC-AUC or top-5
            accuracy since the previous run on the same data flags a regression. Defaults to
            `0.01`.
        fail_under: accuracy under this flags a regression too (and is drawn on the trend).
            Defaults to `None`.
        clock: the time source for stamps (a test seam). Defaults to `time.time`.
        pipeline_options: Beam `PipelineOptions` of the pass (runner and its options).
            Defaults to the local FnApiRunner.
        show_progress: show the pass's progress. Defaults to `False`.
        predictions_dir: where the pass writes its rows, reused by later evaluations (local
            or `gs://`: on Dataflow, a folder the workers can write). Defaults to
            `<reports_dir>/predictions`.
        follow_links: which symbolic links in a data folder are read (`pipeline.data.links`;
            a cache's images are read as its embed job read them). Defaults to `"no"`.
        baseline: a model to compare with on the same images (paired figures with 95 %
            intervals, McNemar's test, a verdict); None: the reports folder's blessed model,
            where there is one, opened from its copy in the reports folder (this model itself
            when it is the blessed one: its rows are reused, every difference is 0). Defaults
            to `None`.
        requirements: `gate.Requirement`s that must all hold. Defaults to `()`.
        bless: when every requirement holds, keep a copy of this model in the reports folder
            (`blessed-model/`) and write `blessed.json` (`blessing.blessing`). Defaults to `False`.
        slice_by: slice dimensions (`pipeline.evaluation.slices.SLICE_BY`): each slice's
            figures, and the requirements checked on each. Defaults to `()`.
        slices_csv: a CSV file of the images' own metadata (`id` and any columns), sliced
            like `slice_by`. Defaults to `None`.

    Returns:
        The report dict, with `run_dir`, `comparison` (see `report_runs.compare_runs`),
        `changes` (counts of fixed and newly broken images, or None), `baseline_comparison`
        (or None), `requirements` (the checks), `requirements_passed`, `slices`,
        `empty_slices` (the dimensions that gave no slice, with the reason) and `blessed`
        (what was written into `blessed.json`, or None).

    Raises:
        ValueError: before any image is scored (nothing written): a reports or predictions
            folder inside the data (`validation.check_apart`), an unknown model, classes
            the model does not know, a requirement that cannot be checked (`gate.validate`),
            a baseline with other classes (`review.resolve_baseline`), a slices file without
            an id column (`slices.read_slices_csv`); after the pass: no readable image, or a
            model whose files changed while it was evaluated (with `bless`).
    """
    check_apart(reports_dir, "--reports-dir", (data, "--data"))
    if predictions_dir:
        check_apart(predictions_dir, "--predictions-dir", (data, "--data"))
    spec = open_model(model_path)
    classes = list(spec.class_names)
    record.prepare_folder(reports_dir)
    baseline, baseline_spec = review.resolve_baseline(baseline, spec, reports_dir)
    gate.validate(requirements, class_names=classes, has_baseline=baseline is not None)
    columns = slices.read_slices_csv(slices_csv) if slices_csv else None
    predictions_dir = predictions_dir or os.path.join(reports_dir, PREDICTIONS_DIR)
    inputs, split = eval_inputs(data, classes, predictions_dir, follow_links=follow_links)
    score = functools.partial(_score, data=data, inputs=inputs, predictions_dir=predictions_dir,
                              top_n=top_n, pipeline_options=pipeline_options,
                              show_progress=show_progress)
    two_passes = baseline_spec is not None and baseline_spec.digest != spec.digest
    result = score(model_path, desc="evaluate candidate" if two_passes else "evaluate")
    summary = result.summary
    figures = summary_metrics(summary["evaluation"], classes)
    # Every image's row is read only for a comparison or slices: the report itself comes from
    # the shards' summaries, so a plain evaluation's driver does not grow with the data.
    scored = (review.scored_images(result.out_dir, result.manifest, classes)
              if baseline or slice_by or columns else {})
    against = None if baseline is None else review.baseline_scored(
        baseline_spec, spec, scored,
        functools.partial(score, desc=f"evaluate baseline {display_name(baseline)}"))
    comparison = (None if against is None else
                  review.compare_predictions(scored, against, classes, top5=len(classes) >= 10))
    keys = slices.slice_keys(scored, by=slice_by, columns=columns)
    slice_rows = slices.slice_figures(scored, keys, classes)
    empty_slices = slices.empty_dimensions(keys)
    checks = review.gate_checks(requirements, figures, scored=scored, baseline=against,
                                slices=slice_rows, class_names=classes, comparison=comparison)
    passed = all(c["passed"] for c in checks)
    fingerprint = summary["fingerprint"] + split
    now = clock()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now))
    run_dir = f"{stamp}-{_slug(display_name(model_path))}-{uuid.uuid4().hex[:6]}"
    title = f"{display_name(model_path)} on {data_name(data)}"
    run = {"model": model_path, "data": data, "data_name": data_name(data),
           "data_fingerprint": fingerprint}
    with contextlib.ExitStack() as held:
        with published_folder(os.path.join(reports_dir, run_dir), job="evaluate",
                              flag="--reports-dir") as staging:
            changes = _changes(reports_dir, staging, _prediction_rows(result.out_dir,
                                                                      result.manifest),
                               run, title, rows=summary["rows"])
            cells.write_cell_pages(staging, cells.prediction_rows(staging), class_names=classes,
                                   title=title)
            report = reports.write_report(
                staging, summary=summary["evaluation"], most_wrong_rows=summary["most_wrong"],
                class_names=classes, title=title, top_n=top_n, clock=lambda: now,
                config={"model": model_path, "data": data},
                sections=_changes_section(changes) + review.review_sections(
                    comparison=comparison, checks=checks, class_names=classes,
                    slices=slice_rows, accuracy=figures["accuracy"],
                    baseline_name=display_name(baseline) if baseline else "",
                    blessed=bless and passed, empty_slices=empty_slices),
                extra={"job": "evaluate", "data_fingerprint": fingerprint,
                       "skipped": summary["skipped"], "num_skipped": len(summary["skipped"]),
                       "embedded": summary["embedded"],
                       "reused": summary["rows"] - summary["embedded"],
                       "predictions_dir": result.out_dir, "cache_dir": spec.cache_dir,
                       "data_name": data_name(data), "model_name": display_name(model_path),
                       "changes": changes, "model_digest": spec.digest, "baseline": baseline,
                       "baseline_digest": baseline_spec and baseline_spec.digest,
                       "baseline_comparison": comparison, "requirements": checks,
                       "requirements_passed": passed,
                       "slices": [{k: v for k, v in row.items() if k != "ids"}
                                  for row in slice_rows],
                       "empty_slices": empty_slices, "fail_under": fail_under,
                       "regression_threshold": regression_threshold})
            held.enter_context(record.locked(reports_dir))
            record.record_unrecorded(reports_dir)  # evaluations stopped during this one's pass
            blessed = blessing.blessing(reports_dir, spec, model=model_path, run_dir=run_dir,
                                        checks=checks, created=report["created"]
                                        ) if bless and passed else None
            report = _amend_report(staging, blessed=blessed, comparison=record.comparison(
                reports_dir, {**report, "blessed": blessed}, run_dir))
        record.commit(reports_dir, run_dir, report)  # published: the commit point
    report["run_dir"] = os.path.join(reports_dir, run_dir)
    return report
