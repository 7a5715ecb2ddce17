"""Running the predict job: open the model and the data, run the pass, account, publish.

    prepare   `open_model` (kind, classes, preparation, digest) and `open_inputs` in the driver;
              an earlier output of the same model, preparation and options under `out` is the
              base whose rows are copied for unchanged images
    run       `PredictImages` on any runner, with progress followed from files
    account   every listed image has its row or a `skipped` entry (`pipeline.batch.accounting`)
    publish   `OUT/<run key>/`: the shards, `predictions.csv` (up to `CSV_MAX_ROWS` rows),
              `index.html`, and `manifest.json` last; the run key is the config key and the
              data's fingerprint, so a rerun over unchanged data is the same output

The driver reads only the shards' indexes (and the rows once, to merge the CSV): the graph and
the driver's work per image stay flat.
"""
import base64
import csv
import dataclasses
import hashlib
import json
import posixpath
import time

import apache_beam as beam
import tensorflow as tf

from pipeline.batch import outputs
from pipeline.batch.accounting import read_indexes, sorted_items
from pipeline.batch.options import pipeline_options as default_options
from pipeline.batch.runner import drop_scratch, run_pipeline
from pipeline.data.fingerprint import combine_hashes
from pipeline.prediction.config import PredictConfig
from pipeline.prediction.inputs import open_inputs
from pipeline.prediction.models import open_model
from pipeline.prediction.page import write_predict_page
from pipeline.prediction.shard import HISTOGRAM_BINS, PredictImages, read_rows
from pipeline.reports.runs import display_name
from pipeline.reports.summaries import merge_summaries
from pipeline.validation import check_apart

__all__ = ["PredictConfig", "PredictResult", "CSV_FILE", "CSV_MAX_ROWS", "run_predict"]

FORMAT_VERSION = 2
CSV_FILE, CSV_MAX_ROWS = "predictions.csv", 1_000_000
#: Lowest-confidence images on the page.
PAGE_LOWEST = 48


@dataclasses.dataclass(frozen=True)
class PredictResult:
    """What `run_predict` did.

    Attributes:
        out_dir: the output folder.
        manifest: its manifest dict.
        reused: True when the same model, options and data had been predicted before, and that
            output was kept as is.
        predicted: images that went through the model in this run.
        reused_images: images whose rows were copied from an earlier output in this run.
        summary: this run's shards added up (see `run_predict`).
    """

    out_dir: str
    manifest: dict
    reused: bool
    predicted: int = 0
    reused_images: int = 0
    summary: dict = None


def _config_key(config, spec):
    """The key of everything but the data: same key, same rows for the same image."""
    key = json.dumps([FORMAT_VERSION, spec.digest, spec.preparation(), config.top_k,
                      config.with_embeddings, config.batch_size, config.cached_embeddings,
                      config.most_wrong], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def build_predict_pipeline(pipeline, inputs, spec, config, *, run_dir, base=None):
    """Adds the predict job's steps to `pipeline`; the graph does not grow with the data."""
    return (pipeline
            | inputs.list_examples()
            | "PredictImages" >> PredictImages(
                spec, run_dir=run_dir, top_k=config.top_k,
                with_embeddings=config.with_embeddings, batch_size=config.batch_size,
                num_shards=config.num_shards, base=base,
                cached_embeddings=config.cached_embeddings, most_wrong=config.most_wrong,
                links=inputs.links))


class _Totals:
    """The shards' indexes added up one at a time (`read_indexes`'s `reduce`): only the page's
    and the evaluation's bounded lists are kept, so the driver does not grow with the data."""

    def __init__(self, class_names, most_wrong):
        self.per_class = dict.fromkeys(class_names, 0)
        self.histogram = [0] * HISTOGRAM_BINS
        self.lowest, self.wrong, self.evaluation = [], [], None
        self._most_wrong = most_wrong

    def add(self, index):
        for name, n in index.pop("per_class").items():
            self.per_class[name] += n
        self.histogram = [a + b for a, b in zip(self.histogram, index.pop("histogram"))]
        self.lowest = sorted(self.lowest + index.pop("lowest"),
                             key=lambda row: (row["probability"], row["id"]))[:PAGE_LOWEST]
        evaluation = index.pop("evaluation")
        if evaluation:
            self.evaluation = merge_summaries([s for s in (self.evaluation,
                                                           evaluation["summary"]) if s])
            self.wrong = sorted(self.wrong + evaluation["most_wrong"],
                                key=lambda row: (-row["confidence"], row["id"]))[
                :self._most_wrong]
        return index


def _summary(listed, indexes, totals):
    return {
        "listed": listed["listed"], "num_shards": listed["num_shards"],
        "predicted": sum(index["predicted"] for index in indexes),
        "reused": sum(index["reused"] for index in indexes),
        "embedded": sum(index.get("embedded", 0) for index in indexes),
        "labelled": sum(index["labelled"] for index in indexes),
        "rows": sum(index["records"] for index in indexes),
        "skipped": sorted_items(item for index in indexes for item in index["skipped"]),
        "no_face": sorted_items(item for index in indexes for item in index["no_face"]),
        "shards": [{key: index[key] for key in ("file", "sha256", "bytes", "records")}
                   for index in indexes],
        "fingerprint": combine_hashes(int(index["fingerprint"], 16) for index in indexes),
        "per_class": totals.per_class, "histogram": totals.histogram, "lowest": totals.lowest,
        "evaluation": totals.evaluation, "most_wrong": totals.wrong}


def _write_csv(run_dir, shards, class_names):
    """Merges the shards' rows into one CSV (shard by shard: memory holds one shard)."""
    path = posixpath.join(run_dir, CSV_FILE)
    with tf.io.gfile.GFile(path, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "path", "digest", "label", "probability", "true_label",
                         "top_k_labels", "top_k_probabilities"]
                        + [f"probability:{name}" for name in class_names])
        for shard in shards:
            for row in read_rows(posixpath.join(run_dir, shard["file"])):
                writer.writerow([row["id"], row["path"], row["digest"], row["label"],
                                 f"{row['probability']:.6f}", row["true_label"] or "",
                                 "|".join(row["top_k_labels"]),
                                 "|".join(f"{p:.6f}" for p in row["top_k_probabilities"])]
                                + [f"{p:.6f}" for p in row["probabilities"]])
    return CSV_FILE


def _write_page(run_dir, summary, spec, config):
    counts = {key: summary[key] for key in ("listed", "predicted", "reused")}
    counts["skipped"] = len(summary["skipped"])
    lowest = [{**row, "thumbnail": row["thumbnail"] and base64.b64decode(row["thumbnail"])}
              for row in summary["lowest"]]
    write_predict_page(run_dir, title=f"Predictions: {display_name(spec.path)} on "
                       f"{display_name(config.data)}",
                       class_names=list(spec.class_names), per_class=summary["per_class"],
                       histogram=summary["histogram"], lowest=lowest, counts=counts,
                       skipped=summary["skipped"])


def _manifest(config, spec, inputs, summary, *, config_key, run_key, base, csv_file, page,
              seconds):
    kept = ("listed", "predicted", "reused", "embedded", "labelled", "num_shards", "shards",
            "skipped", "no_face", "per_class", "histogram")
    return {
        "format_version": FORMAT_VERSION, "run_key": run_key, "config_key": config_key,
        "config": config.to_dict(),
        "model": {"kind": spec.kind, "path": spec.path, "digest": spec.digest,
                  "preparation": spec.preparation()},
        "source": {**inputs.describe(), "data": config.data,
                   "fingerprint": summary["fingerprint"]},
        "class_names": list(spec.class_names), **{key: summary[key] for key in kept},
        "num_skipped": len(summary["skipped"]), "num_no_face": len(summary["no_face"]),
        "counts": {"listed": summary["listed"], "predicted": summary["predicted"],
                   "reused": summary["reused"], "skipped": len(summary["skipped"]),
                   "rows": summary["rows"]},
        "files": {"csv": csv_file, "page": "index.html" if page else None},
        "base_output": base and base["key"], "versions": outputs.versions(),
        "seconds": round(seconds, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "created_at": time.time()}


def run_predict(config, *, inputs=None, pipeline_options=None, test_pipeline=None,
                show_progress=False, page=True, desc="predict"):
    """Predicts every image of `config.data` with `config.model` into `OUT/<run key>/`.

    Args:
        config: a `PredictConfig`.
        inputs: what to read, opened already (`open_inputs`, or a list of its kind); defaults
            to `open_inputs(config.data, ...)`.
        pipeline_options: Beam `PipelineOptions`. Defaults to the local FnApiRunner.
        test_pipeline: a pipeline to build on instead of a new one (a test seam).
        show_progress: show progress while the pipeline runs. Defaults to `False`.
        page: write `index.html`. Defaults to `True`.
        desc: the progress line's label. Defaults to `"predict"`.

    Returns:
        A `PredictResult`; its `summary` holds the added-up indexes (counts, the page's lists,
        and where true labels are known the evaluation summary and most confident mistakes).

    Raises:
        ValueError: an unknown model or data (one line), or a run that does not account for
            every listed image (`IncompleteRunError`; nothing published).
    """
    started = time.time()
    check_apart(config.out, "--out", (config.data, "--data"))
    spec = open_model(config.model)
    if config.with_embeddings and not spec.has_embeddings:
        raise ValueError(f"model {config.model!r}: a SavedModel export has no embeddings; "
                         "predict with its model.keras or head folder for --with-embeddings")
    inputs = inputs or open_inputs(config.data, spec.class_names,
                                   labels_from_folders=config.labels_from_folders,
                                   follow_links=config.follow_links)
    config_key = _config_key(config, spec)
    base = outputs.find_base(config.out, config_key)
    run_dir = outputs.new_run_dir(config.out, config_key)
    try:
        return _run_and_publish(config, spec, inputs, config_key, base, run_dir, started,
                                pipeline_options=pipeline_options, test_pipeline=test_pipeline,
                                show_progress=show_progress, page=page, desc=desc)
    except BaseException:
        outputs.release(run_dir)  # nothing of a failed run is kept
        raise


def _run_and_publish(config, spec, inputs, config_key, base, run_dir, started, *,
                     pipeline_options, test_pipeline, show_progress, page, desc):
    pipeline = test_pipeline or beam.Pipeline(options=pipeline_options or default_options())
    build_predict_pipeline(pipeline, inputs, spec, config, run_dir=run_dir, base=base)
    run_pipeline(pipeline, run_dir, desc=desc, show_progress=show_progress)
    totals = _Totals(spec.class_names, config.most_wrong)
    listed, indexes = read_indexes(run_dir, job="predict", step="PredictShard",
                                   reduce=totals.add)
    summary = _summary(listed, indexes, totals)
    run_key = hashlib.sha256(f"{config_key}:{summary['fingerprint']}".encode()).hexdigest()[:16]
    out_dir = posixpath.join(config.out, run_key)
    counts = {"predicted": summary["predicted"], "reused_images": summary["reused"],
              "summary": summary}
    whole = outputs.read_whole(out_dir)
    if whole is not None:
        outputs.release(run_dir)
        return PredictResult(out_dir, whole, reused=True, **counts)
    drop_scratch(run_dir)
    csv_file = (_write_csv(run_dir, summary["shards"], spec.class_names)
                if summary["rows"] <= CSV_MAX_ROWS else None)
    if page:
        _write_page(run_dir, summary, spec, config)
    manifest, published = outputs.publish(run_dir, out_dir, _manifest(
        config, spec, inputs, summary, config_key=config_key, run_key=run_key, base=base,
        csv_file=csv_file, page=page, seconds=time.time() - started))
    return PredictResult(out_dir, manifest, reused=not published, **counts)
