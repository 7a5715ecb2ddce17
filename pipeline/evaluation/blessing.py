"""The model that passed review: its copy in the reports folder, `blessed.json`, `require_blessed`.

A model that passes every requirement of its review (`pipeline.evaluation.gate`) is blessed:
`blessing` keeps a copy of it in the reports folder (`blessed-model/<digest>/`, written whole),
and `write_blessing` writes `blessed.json` (which points to that copy) once its evaluation is
published; `require_blessed` refuses, in one line, a model that is not the blessed one.

A later evaluation's baseline is the copy (`open_blessed`), so a model retrained in place
(`runs/finetune/model.keras` overwritten every week) is still compared with the model that was
blessed. A blessing written before copies were kept uses the model's own path while it still
holds the blessed model. A `blessed.json` that is not a blessing record is set aside
(`set_aside_damaged`) with a warning: the folder then has no blessed model until the next
`--bless`.

Example:
    >>> require_blessed("reports", "runs/finetune/model.keras")["blessed_at"]
"""
import json
import os
import posixpath
import shutil
import warnings

import tensorflow as tf

from pipeline.files import write_json_atomic
from pipeline.prediction.models import EXPORT_INFO, FACE_CROP, LABELS, SAVED_MODEL, open_model
from pipeline.publish import published_folder, verify_published
from pipeline.reports.runs import BLESSED
from pipeline.training.end_to_end import MODEL_INFO

__all__ = ["BLESSED", "COPIES", "blessing", "write_blessing", "read_blessed", "set_aside_damaged",
           "open_blessed", "require_blessed"]

#: The folder of the blessed model's copy in a reports folder (`<digest[:12]>/` in it).
COPIES = "blessed-model"
_KEYS = ("model", "model_digest", "evaluation", "blessed_at")


def _model_files(spec):
    """`(folder, names, model)`: the files of `spec`'s model that `open_model` reads (and that
    its digest covers), as names in `folder`, and the path to open relative to a copy."""
    if spec.kind == "finetuned":
        folder, name = posixpath.split(spec.path)
        return folder, [name, MODEL_INFO], name
    names = sorted(tf.io.gfile.listdir(spec.path))
    wanted = ((lambda n: n.startswith("head.")) if spec.kind == "head" else
              (lambda n: n.rstrip("/") in (SAVED_MODEL, LABELS, FACE_CROP, EXPORT_INFO)))
    return spec.path, [n.rstrip("/") for n in names if wanted(n)], ""


def _copy(source, target):
    """Copies a file or a folder tree (local or any scheme `tf.io.gfile` reads)."""
    if not tf.io.gfile.isdir(source):
        tf.io.gfile.copy(source, target)
        return
    for root, _, names in tf.io.gfile.walk(source):
        folder = os.path.join(target, posixpath.relpath(root, source))
        os.makedirs(folder, exist_ok=True)
        for name in names:
            tf.io.gfile.copy(posixpath.join(root, name), os.path.join(folder, name))


def _whole(folder):
    try:
        return verify_published(folder) is not None
    except ValueError:
        return False


def blessing(reports_dir, spec, *, model, run_dir, checks, created):
    """Keeps a copy of the model that passed in the reports folder and returns its blessing
    record, for `write_blessing` once its evaluation is published.

    The copy (`<reports_dir>/blessed-model/<digest[:12]>/`: a fine-tuned model's `model.keras`
    and `model.json`, a head's `head.*` files, an export's SavedModel, labels and settings) is
    written whole (`pipeline.publish`) and opened again to check that it is the model evaluated;
    a whole copy already there is kept.

    Args:
        reports_dir: the reports folder.
        spec: the model's `ModelSpec`.
        model: the model's path as given.
        run_dir: the evaluation's run folder (its name in the reports folder).
        checks: the gate's checks (`gate.check`), all passed.
        created: the evaluation's time.

    Returns:
        The record: `model`, `model_digest`, `copy` (the copy's path, relative to the reports
        folder), `evaluation`, `requirements`, `checks`, `blessed_at`.

    Raises:
        ValueError: the model's files changed while it was evaluated.
    """
    source, names, opened = _model_files(spec)
    copy = posixpath.join(COPIES, spec.digest[:12])
    out_dir = os.path.join(reports_dir, copy)
    if not _whole(out_dir):
        with published_folder(out_dir, job="evaluate", flag="--reports-dir") as staging:
            for name in names:
                _copy(posixpath.join(source, name), os.path.join(staging, name))
            if open_model(os.path.join(staging, opened)).digest != spec.digest:
                raise ValueError(f"model {model!r}: its files changed while it was evaluated; "
                                 "not blessed (evaluate it again)")
    return {"model": model, "model_digest": spec.digest,
            "copy": posixpath.join(copy, opened) if opened else copy, "evaluation": run_dir,
            "requirements": sorted({c["requirement"] for c in checks}), "checks": checks,
            "blessed_at": created}


def write_blessing(reports_dir, blessed):
    """Writes `blessed.json` (a `blessing` record) and removes the copies of models blessed
    before. Call it under the reports folder's lock, once the evaluation is published."""
    write_json_atomic(os.path.join(reports_dir, BLESSED), blessed)
    copies, kept = os.path.join(reports_dir, COPIES), blessed["copy"].split("/")[1]
    for name in os.listdir(copies) if os.path.isdir(copies) else ():
        if name != kept and not name.startswith("."):
            shutil.rmtree(os.path.join(copies, name), ignore_errors=True)


def read_blessed(reports_dir):
    """The reports folder's `blessed.json`, or None where there is none.

    Raises:
        ValueError: one line naming the file, when it is not a blessing record.
    """
    path = os.path.join(reports_dir, BLESSED)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            blessed = json.load(handle)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a blessing record ({err})") from None
    missing = [key for key in _KEYS if not isinstance(blessed, dict) or key not in blessed]
    if missing:
        raise ValueError(f"{path}: not a blessing record (no {missing[0]!r})")
    return blessed


def set_aside_damaged(reports_dir):
    """Moves a `blessed.json` that is not a blessing record to `blessed.json.damaged`, with a
    warning: the folder has no blessed model until the next `--bless` writes one. Call it under
    the reports folder's lock."""
    try:
        read_blessed(reports_dir)
    except ValueError as err:
        path = os.path.join(reports_dir, BLESSED)
        os.replace(path, f"{path}.damaged")
        warnings.warn(f"{err}; moved to {path}.damaged: no model is blessed here until the next "
                      "--bless", stacklevel=2)


def open_blessed(reports_dir, blessed):
    """The blessed model's `ModelSpec`: its copy in the reports folder, else (a blessing
    written before copies were kept, or a copy removed) its own path while that still holds
    the blessed model (same digest); None, with a warning, when neither does."""
    paths = [blessed["model"]]
    if blessed.get("copy"):
        paths.insert(0, os.path.join(reports_dir, blessed["copy"]))
    for path in paths:
        try:
            spec = open_model(path)
        except ValueError:
            continue
        if spec.digest == blessed["model_digest"]:
            return spec
    warnings.warn(f"{os.path.join(reports_dir, BLESSED)}: the model blessed at "
                  f"{blessed['blessed_at']} ({blessed['model']}) is gone or has changed and the "
                  "reports folder holds no copy of it; this run has no baseline (the next "
                  "--bless keeps a copy)", stacklevel=2)
    return None


def require_blessed(reports_dir, model):
    """Raises `ValueError` (one line) unless `model` (a path, opened to digest it) is the one
    blessed in `reports_dir`; returns the blessing.

    `blessed.json` is written only once its evaluation is published, so it always names a
    whole evaluation; that evaluation's runs.csv row follows under the same lock (a kill in
    between is recorded by the next evaluation), so the blessing holds without it.
    """
    try:
        blessed = read_blessed(reports_dir)
    except ValueError as err:
        raise ValueError(f"--require-blessed {reports_dir!r}: {err}; bless a model again "
                         "(`python -m jobs.evaluate ... --bless`)") from None
    if blessed is None:
        raise ValueError(f"--require-blessed {reports_dir!r}: no blessed model there (run "
                         "`python -m jobs.evaluate ... --bless` first)")
    if blessed["model_digest"] != open_model(model).digest:
        raise ValueError(f"model {model!r} is not the blessed one of {reports_dir!r} "
                         f"({blessed['model']}, blessed {blessed['blessed_at']})")
    return blessed
