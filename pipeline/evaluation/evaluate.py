"""Scheduled evaluation: one model on one data set, as a time-stamped run in a reports folder.

`evaluate` scores a fine-tuned `model.keras` or a head (with its cache's backbone) on a class
folder, a TFDS split or a cache's split, writes the full report into
`<reports>/<stamp>-<model>/`, and records the run in `<reports>/runs.csv`, whose trend plot and
`index.html` it redraws, under a file lock so that concurrent runs never corrupt them.

Heads embed incrementally: embeddings are content-addressed (sha256 of the image file), seeded
from the head's cache and kept in `<reports>/embeddings/`, so only images never seen before go
through the backbone.
"""
import contextlib
import dataclasses
import fcntl
import hashlib
import html
import json
import os
import re
import time
import uuid

import numpy as np
import tensorflow as tf

from pipeline import reports
from pipeline.console import track
from pipeline.data.images import ImageError, load_image
from pipeline.data.sources import FolderSource, TfdsSource
from pipeline.features import cache
from pipeline.reports import runs as report_runs
from pipeline.reports.runs import RUNS_COLUMNS, display_name

__all__ = ["RUNS_COLUMNS", "EvalExample", "open_model", "eval_examples", "evaluate"]

_BATCH = 64


@dataclasses.dataclass(frozen=True)
class EvalExample:
    """One image to score: its id, true label, file path (or ""), and bytes (or None: read path)."""

    id: str
    label: int
    path: str
    data: bytes | None = None


class _KerasModel:
    """A fine-tuned end-to-end model: images in, probabilities out."""

    def __init__(self, path):
        from pipeline.training.end_to_end import load_finetuned

        self._model, info = load_finetuned(path)
        self.class_names, self.image_size = info["class_names"], info["image_size"]
        self.face_crop = info["embed_config"].get("face_crop", False)
        self.cache_dir = None
        self.counts = {"embedded": 0, "reused": 0}

    def predict(self, images, digests):
        from pipeline.training.heads import logits_to_proba

        return logits_to_proba(self._model.predict(images, verbose=0), len(self.class_names))


class _HeadModel:
    """A head plus its cache's backbone, with a content-addressed embedding store."""

    def __init__(self, directory, store_dir):
        from pipeline.training.heads import load_head

        self.head = load_head(directory)
        self.cache_dir = self.head.meta["cache_dir"]
        manifest = cache.read_manifest(self.cache_dir)
        config = manifest["config"]
        self.class_names, self.image_size = manifest["class_names"], config["image_size"]
        self.face_crop = config.get("face_crop", False)
        self._embed_args = {"name": config["backbone"], "image_size": config["image_size"],
                            "weights": manifest["weights_used"], "alpha": config["alpha"]}
        key = hashlib.sha256(json.dumps([self._embed_args, manifest["weights_digest"],
                                         self.face_crop],
                                        sort_keys=True).encode()).hexdigest()[:16]
        self._store_path = os.path.join(store_dir, f"{key}.npz")
        self._store = self._seed_store(manifest)
        self._manifest = manifest
        self._embedder = None
        self.counts = {"embedded": 0, "reused": 0}

    def _seed_store(self, manifest):
        store = {}
        for split in manifest["counts"]:
            data = cache.load_split(self.cache_dir, split, clean_only=True, verify=False)
            store.update(zip(data.digests.tolist(), data.embeddings))
        if os.path.isfile(self._store_path):
            with np.load(self._store_path) as saved:
                store.update(zip(saved["digests"].tolist(), saved["embeddings"]))
        return store

    def predict(self, images, digests):
        missing = [i for i, d in enumerate(digests) if d not in self._store]
        if missing:
            if self._embedder is None:
                from pipeline.features.backbones import Embedder, manifest_weights

                self._embedder = Embedder(**{**self._embed_args,
                                             "weights": manifest_weights(self._manifest)})
            for i, vector in zip(missing, self._embedder(images[missing])):
                self._store[digests[i]] = vector
        self.counts["embedded"] += len(missing)
        self.counts["reused"] += len(digests) - len(missing)
        return self.head.predict_proba(np.stack([self._store[d] for d in digests]))

    def save_store(self):
        os.makedirs(os.path.dirname(self._store_path), exist_ok=True)
        tmp = f"{self._store_path}.tmp-{uuid.uuid4().hex}.npz"
        np.savez(tmp, digests=np.array(list(self._store), dtype=str),
                 embeddings=np.stack(list(self._store.values())))
        os.replace(tmp, self._store_path)


def open_model(path, *, store_dir):
    """Opens a fine-tuned `model.keras` (file or its folder) or a head folder for evaluation.

    Raises:
        ValueError: the path holds neither.
    """
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "model.keras")):
        path = os.path.join(path, "model.keras")
    if path.endswith(".keras") and os.path.isfile(path):
        return _KerasModel(path)
    if os.path.isfile(os.path.join(path, "head.json")):
        return _HeadModel(path, store_dir)
    raise ValueError(f"model {path!r}: expected a model.keras from jobs.finetune or a head "
                     "folder from jobs.train_head")


def _label_map(found, known, data):
    unknown = sorted(set(found) - set(known))
    if unknown:
        raise ValueError(f"data {data!r}: classes {unknown} are not among the model's "
                         f"({', '.join(known)})")
    return {name: known.index(name) for name in found}


def eval_examples(data, class_names):
    """The examples of `data`, labelled in the model's class order, and a fingerprint.

    `data` is a class folder (every image), `tfds:NAME[:SPLIT]` (default split `test`), or a
    cache folder, optionally `DIR:SPLIT` (default `val`).

    Returns:
        `(examples, fingerprint)`.
    """
    if data.startswith("tfds:"):
        name, _, split = data[len("tfds:"):].partition(":")
        source = TfdsSource(name)
        mapping = _label_map(source.class_names, class_names, data)
        examples = [EvalExample(ref.id, mapping[ref.label_name], "", payload)
                    for ref, payload in source.examples(split or "test")]
        return examples, source.fingerprint + f":{split or 'test'}"
    root, _, split = data.rpartition(":") if re.search(r":(train|val|test)$", data) else (
        data, "", "")
    if os.path.isfile(os.path.join(root, cache.MANIFEST)):
        manifest = cache.read_manifest(root)
        split = split or "val"
        mapping = _label_map(manifest["class_names"], class_names, data)
        refs = cache.load_split(root, split, clean_only=True)
        base = manifest["source"].get("root") or ""
        examples = [EvalExample(i, mapping[manifest["class_names"][label]],
                                os.path.join(base, i) if base else "")
                    for i, label in zip(refs.ids.tolist(), refs.labels.tolist())]
        return examples, f"{manifest['cache_key']}:{split}"
    source = FolderSource(data, val_fraction=0.0)
    mapping = _label_map(source.class_names, class_names, data)
    refs = source.refs()
    return ([EvalExample(r.id, mapping[r.label_name], r.path) for r in refs],
            source.fingerprint(refs))


def _batches(examples, image_size, skipped, *, face_crop):
    batch = []
    for example in examples:
        try:
            data = example.data
            if data is None:
                with tf.io.gfile.GFile(example.path, "rb") as handle:
                    data = handle.read()
            item = (example, load_image(data, image_size, face_crop=face_crop),
                    hashlib.sha256(data).hexdigest())
        except (ImageError, OSError, tf.errors.OpError) as err:
            skipped.append({"id": example.id, "path": example.path,
                            "reason": (str(err).splitlines() or [type(err).__name__])[0]})
            continue
        batch.append(item)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _data_name(data):
    """The data set's name for titles; a cache folder is named after the folder it embedded."""
    root, _, split = data.rpartition(":") if re.search(r":(train|val|test)$", data) else (
        data, "", "")
    if os.path.isfile(os.path.join(root, cache.MANIFEST)):
        source = cache.read_manifest(root)["source"]
        name = display_name(source.get("root") or source.get("data") or root)
        return f"{name} ({split or 'val'})"
    return display_name(data)


def _slug(path):
    name = os.path.basename(os.path.normpath(path)).replace(".keras", "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "model"


@contextlib.contextmanager
def _locked(reports_dir):
    with open(os.path.join(reports_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _record_run(reports_dir, row, *, threshold, fail_under):
    """Appends the run to runs.csv and redraws the index under the lock; returns the comparison."""
    with _locked(reports_dir):
        return report_runs.update_runs_index(reports_dir, row, threshold=threshold,
                                             fail_under=fail_under)


def _previous_run(reports_dir, fingerprint):
    same = [r for r in report_runs.read_runs(reports_dir)
            if r["data_fingerprint"] == fingerprint]
    return same[-1]["run_dir"] if same else None


def _changes(reports_dir, run_dir, predictions, fingerprint, title):
    """Diffs this run against the previous one on the same data; None when not comparable."""
    previous = _previous_run(reports_dir, fingerprint)
    run_path = os.path.join(reports_dir, run_dir)
    os.makedirs(run_path, exist_ok=True)
    report_runs.write_predictions(run_path, predictions)
    if previous is None:
        return None
    changes = report_runs.diff_runs(
        report_runs.read_predictions(os.path.join(reports_dir, previous)),
        {row["id"]: {k: str(v) for k, v in row.items()} for row in predictions})
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
    path = os.path.join(run_path, "report.json")
    with open(path) as handle:
        saved = json.load(handle)
    saved.update(entries)
    with open(path, "w") as handle:
        json.dump(saved, handle, indent=2, sort_keys=True)


def _score(model, examples):
    """Runs the model over the examples; returns (skipped, columns dict of lists, proba)."""
    skipped, columns, probas = [], {"ids": [], "labels": [], "paths": [], "digests": []}, []
    batches = _batches(examples, model.image_size, skipped, face_crop=model.face_crop)
    for batch in track(batches, desc="evaluate", unit="images", total=len(examples), count=len):
        probas.append(model.predict(np.stack([b[1] for b in batch]), [b[2] for b in batch]))
        columns["ids"] += [b[0].id for b in batch]
        columns["labels"] += [b[0].label for b in batch]
        columns["paths"] += [b[0].path for b in batch]
        columns["digests"] += [b[2] for b in batch]
    return skipped, columns, (np.concatenate(probas) if probas else None)


def _prediction_rows(columns, proba, class_names):
    predicted = np.argmax(proba, axis=1)
    return [{"id": i, "path": path, "digest": digest, "true": class_names[label],
             "predicted": class_names[p], "confidence": float(proba[n, p])}
            for n, (i, path, digest, label, p) in enumerate(zip(
                columns["ids"], columns["paths"], columns["digests"], columns["labels"],
                predicted))]


def evaluate(model_path, data, reports_dir, *, top_n=50, regression_threshold=0.01,
             fail_under=None, clock=time.time):
    """Evaluates a model on a data set and records the run; returns the report dict.

    Args:
        model_path: a fine-tuned `model.keras` (or its folder), or a head folder.
        data: a class folder, `tfds:NAME[:SPLIT]`, or a cache folder `[:SPLIT]`.
        reports_dir: the reports folder (`<stamp>-<model>/` runs, `runs.csv`, `index.html`,
            `trend.png`, `recall_trend.png`, `embeddings/`).
        top_n: rows of the most-wrong report. Defaults to `50`.
        regression_threshold: a drop larger than this in accuracy, macro-F1, ROC-AUC or top-5
            accuracy since the previous run on the same data flags a regression. Defaults to
            `0.01`.
        fail_under: accuracy under this flags a regression too (and is drawn on the trend).
            Defaults to `None`.
        clock: the time source for stamps (a test seam). Defaults to `time.time`.

    Returns:
        The report dict, with `run_dir`, `comparison` (see `report_runs.compare_runs`) and
        `changes` (counts of fixed and newly broken images, or None).

    Raises:
        ValueError: an unknown model, classes the model does not know, or no readable image.
    """
    os.makedirs(reports_dir, exist_ok=True)
    model = open_model(model_path, store_dir=os.path.join(reports_dir, "embeddings"))
    examples, fingerprint = eval_examples(data, model.class_names)
    skipped, columns, proba = _score(model, examples)
    if proba is None:
        raise ValueError(f"data {data!r}: no readable image to evaluate")
    if isinstance(model, _HeadModel):
        model.save_store()
    now = clock()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now))
    run_dir = f"{stamp}-{_slug(display_name(model_path))}-{uuid.uuid4().hex[:6]}"
    title = f"{display_name(model_path)} on {_data_name(data)}"
    changes = _changes(reports_dir, run_dir, _prediction_rows(columns, proba, model.class_names),
                       fingerprint, title)
    report = reports.write_report(
        os.path.join(reports_dir, run_dir), ids=np.array(columns["ids"]),
        y_true=np.array(columns["labels"]), proba=proba, class_names=model.class_names,
        title=title, paths=columns["paths"] if any(columns["paths"]) else None,
        top_n=top_n, clock=lambda: now, config={"model": model_path, "data": data},
        sections=_changes_section(changes),
        extra={"job": "evaluate", "data_fingerprint": fingerprint, "skipped": skipped,
               "num_skipped": len(skipped), **model.counts, "cache_dir": model.cache_dir,
               "data_name": _data_name(data), "model_name": display_name(model_path),
               "changes": changes})
    report["comparison"] = _record_run(
        reports_dir, {**report, "time": report["created"], "model": model_path, "data": data,
                      "data_name": report["data_name"],
                      "run_dir": run_dir, "fail_under": fail_under},
        threshold=regression_threshold, fail_under=fail_under)
    _amend_report(os.path.join(reports_dir, run_dir), comparison=report["comparison"])
    report["run_dir"] = os.path.join(reports_dir, run_dir)
    return report
