"""Fine-tuning: the end-to-end model (`pipeline.training.end_to_end`), warm-started from the
cached-feature head.

The data source, split, backbone, image size and augmentation come from the cache's manifest, so
training and validation images are exactly the cache's. The dense layer starts from the head that
`jobs.train_head` fitted on the cached embeddings, so phase 1 is never repeated: before any
fine-tuning step the model's validation predictions equal the head's. That warm start is a
candidate like every epoch (`KeepBest`): the model written is the best by validation, so
fine-tuning never makes the validation result worse than the head's. Where the cache's augmentation
mirrors images (the default), each candidate is also scored averaged over each image and its
mirror, and `model.keras` averages that way when it scored better (`pipeline.training.tta`).
"""
import csv
import dataclasses
import math
import os

import keras
import numpy as np
import tensorflow as tf

from pipeline import reports
from pipeline.data.augment import mixup_batches
from pipeline.features import cache
from pipeline.files import write_json_atomic
from pipeline.training.ema import ema_momentum
from pipeline.training.end_to_end import (MODEL_FILE, MODEL_INFO, backbone_of, build_model,
                                          compile_model, learning_rate_schedule, probabilities,
                                          set_trainable, soft_targets)
from pipeline.training.head_training import example_paths
from pipeline.training.heads import fraction_subset, load_head, logits_to_proba
from pipeline.training.image_data import image_dataset, split_refs
from pipeline.training.epochs import fit
from pipeline.training.selection import kept_summary
from pipeline.training.tta import TTA_CHOICES, flip_tta_wanted, score_candidate, with_flip_tta
from pipeline.validation import check_choice, check_scalar

__all__ = ["FinetuneConfig", "run_finetune"]

_STRATEGIES = ("none", "mirrored")
_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """How the end-to-end model is fine-tuned.

    The defaults come from measurement (../shared/BASELINES.md, bench/finetune_genki.py and the
    README's fine-tune levers): with a small backbone, Adam on all layers clearly beats the seeds'
    1e-5 on the top layers, and 3e-4 beats 1e-4 on GENKI-4K (0.9330 against 0.9122) and on
    flower_photos (0.9199 against 0.9096), converging in fewer epochs.

    Attributes:
        epochs: at most this many fine-tuning epochs (after the head's); early stopping usually
            ends sooner. Defaults to `20`.
        learning_rate: Adam's learning rate. Defaults to `3e-4`.
        fine_tune_at: backbone layers before this index stay frozen; None: see `unfreeze_last`.
        unfreeze_last: unfreeze only the last N backbone layers; None (and no `fine_tune_at`)
            unfreezes all. Defaults to None.
        batch_size: Defaults to `32`.
        patience: stop after this many epochs without a new best fine-tune epoch (validation
            accuracy, then loss). Defaults to `3`.
        distribute: `"none"` or `"mirrored"` (`tf.distribute.MirroredStrategy`). Defaults to
            `"none"`.
        train_fraction: fine-tune on this deterministic stratified fraction of the training
            images (the same subset as the head's `--train-fraction`). Defaults to `1.0`.
        schedule: `"constant"` (Adam at `learning_rate`) or `"cosine"` (cosine decay to 0 over
            `epochs`). Defaults to `"constant"`.
        warmup_epochs: a linear warm-up from 0 to `learning_rate` over this many epochs
            first (either schedule; at most `epochs`). Defaults to `1`: without it, Adam 3e-4
            first knocks the warm-started head down (GENKI-4K with face crop: 0.64 after epoch
            1 against the head's 0.78; 0.84 with it), and 0.90 came at epoch 4 instead of 7.
        head_learning_rate_scale: the dense layer learns at this multiple of `learning_rate`
            (discriminative learning rates: the backbone slower than the head). Defaults to
            `1.0`.
        label_smoothing: of the training targets (validation is scored on the true labels).
            Defaults to `0.0`.
        mixup: mix each training image and its target with another of its batch by a weight
            drawn from Beta(mixup, mixup) (`pipeline.data.augment.mixup_batches`); 0 turns it
            off. Defaults to `0.0`.
        ema: each epoch's candidate is the moving average of the weights over about one epoch
            of steps (`pipeline.training.ema`) instead of the weights at the epoch's end
            (measured: +2.2 points on flower_photos over two seeds, no difference on GENKI-4K).
            Defaults to `True`.
        tta: test-time augmentation of the shipped model: `"auto"` (try averaging over each
            image and its mirror when the cache's augmentation mirrors images, and keep it where
            it scores better on validation), `"flip"` (try it always) or `"none"`. Defaults to
            `"auto"`.
        seed: Defaults to `123`.
    """

    epochs: int = 20
    learning_rate: float = 3e-4
    fine_tune_at: int | None = None
    unfreeze_last: int | None = None
    batch_size: int = 32
    patience: int = 3
    distribute: str = "none"
    train_fraction: float = 1.0
    schedule: str = "constant"
    warmup_epochs: int = 1
    head_learning_rate_scale: float = 1.0
    label_smoothing: float = 0.0
    mixup: float = 0.0
    ema: bool = True
    tta: str = "auto"
    seed: int = 123

    def __post_init__(self):
        check_scalar(self.epochs, "epochs", int, min_val=0)
        check_scalar(self.learning_rate, "learning_rate", float, min_val=0.0, include_min=False)
        if self.fine_tune_at is not None and self.unfreeze_last is not None:
            raise ValueError("fine_tune_at and unfreeze_last: expected at most one; got both")
        if self.fine_tune_at is not None:
            check_scalar(self.fine_tune_at, "fine_tune_at", int, min_val=0)
        if self.unfreeze_last is not None:
            check_scalar(self.unfreeze_last, "unfreeze_last", int, min_val=0)
        check_scalar(self.batch_size, "batch_size", int, min_val=1)
        check_scalar(self.patience, "patience", int, min_val=1)
        check_choice(self.distribute, "distribute", _STRATEGIES)
        check_choice(self.schedule, "schedule", _SCHEDULES)
        check_choice(self.tta, "tta", TTA_CHOICES)
        check_scalar(self.head_learning_rate_scale, "head_learning_rate_scale", float,
                     min_val=0.0, include_min=False)
        check_scalar(self.label_smoothing, "label_smoothing", float, min_val=0.0, max_val=1.0,
                     include_max=False)
        check_scalar(self.mixup, "mixup", float, min_val=0.0)
        check_scalar(self.warmup_epochs, "warmup_epochs", int, min_val=0)
        check_scalar(self.train_fraction, "train_fraction", float, min_val=0.0, max_val=1.0,
                     include_min=False)


def _read_log(path):
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    return {k: [float(row[k]) for row in rows] for k in keys}


def _check_head(head, manifest, head_dir):
    if head.kind != "dense":
        raise ValueError(f"head {head_dir!r} is a {head.kind} head; fine-tuning warm-starts from "
                         "a dense head: train one with `--head dense`")
    if head.meta.get("cache_key") != manifest["cache_key"]:
        raise ValueError(f"head {head_dir!r} was trained on cache {head.meta.get('cache_key')}, "
                         f"not on {manifest['cache_key']}: pass the head of this cache")


def run_finetune(cache_dir, head_dir, out_dir, *, config=FinetuneConfig(), resume=False,
                 top_n=50, callbacks=()):
    """Fine-tunes the end-to-end model of a cache from its dense head, and reports on it.

    The warm-started model (the head) is candidate 0: `model.keras` is the best candidate by
    validation accuracy (then loss), which is the warm start itself when no fine-tune epoch beats
    it, so fine-tuning never makes the validation result worse. `report.json` says which was kept
    and why (`kept`: "finetuned" or "warm_start", `kept_epoch`, 0 for the warm start, and
    `kept_reason`), as does `head_vs_finetuned.csv`. Also writes `checkpoint.keras` (the last
    epoch), `training_log.csv`, `tensorboard/` and the full report (curves of both phases, with
    a marker where fine-tuning starts) into `out_dir`.

    Args:
        cache_dir: a complete cache.
        head_dir: a dense head trained on that cache by `jobs.train_head`.
        out_dir: the output folder.
        config: a `FinetuneConfig`. Defaults to `FinetuneConfig()`.
        resume: continue an interrupted run from its last epoch. Defaults to `False`.
        top_n: rows of the most-wrong report. Defaults to `50`.
        callbacks: extra Keras callbacks (a test seam). Defaults to `()`.

    Returns:
        The report dict (also written as `report.json`).

    Raises:
        ValueError: a head of another cache or kind, a TFDS cache, changed data, bad layers.
    """
    manifest = cache.read_manifest(cache_dir)
    head = load_head(head_dir)
    _check_head(head, manifest, head_dir)
    train_refs, val_refs = _training_refs(manifest, config)
    num_classes = len(manifest["class_names"])
    model, first_unfrozen = _compiled_model(
        manifest, head, config, steps_per_epoch=math.ceil(len(train_refs) / config.batch_size))
    side, face_crop = manifest["config"]["image_size"], manifest["config"].get("face_crop", False)
    train = image_dataset(train_refs, side, batch_size=config.batch_size,
                          shuffle_seed=config.seed, face_crop=face_crop)
    if config.label_smoothing or config.mixup:
        train = soft_targets(train, num_classes)
    if config.mixup:
        train = mixup_batches(train, alpha=config.mixup, seed=config.seed)
    val = image_dataset(val_refs, side, batch_size=config.batch_size, face_crop=face_crop)
    y_true = np.array([r.label for r in val_refs])
    cached_val = cache.load_split(cache_dir, "val", clean_only=True)
    head_proba = head.predict_proba(cached_val.embeddings)
    warm_logits = model.predict(val, verbose=0)
    warm_start_diff = float(np.abs(logits_to_proba(warm_logits, num_classes) - head_proba).max())
    os.makedirs(out_dir, exist_ok=True)
    head_epochs = len(head.history.get("loss", []))
    try_flip = flip_tta_wanted(config.tta, manifest["config"])

    def scorer(candidate, logits=None):
        return score_candidate(candidate, val, y_true, num_classes, flip_tta=try_flip,
                               logits=logits)

    _, warm_start_score = scorer(model, warm_logits)
    _, state = fit(model, train, out_dir, config=config, scorer=scorer,
                   warm_start_score=warm_start_score, initial_epoch=head_epochs, resume=resume,
                   callbacks=callbacks)
    flip_tta = state["best"].get("flip_tta", False)  # a state from before TTA has none
    if flip_tta:
        model = with_flip_tta(model)
    _save_model(model, out_dir, manifest, config)
    proba = probabilities(model, val, num_classes)
    tuned = _read_log(os.path.join(out_dir, "training_log.csv"))
    history = {k: head.history.get(k, []) + tuned.get(k, [])
               for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    head_metrics = reports.compute_metrics(y_true, head_proba, manifest["class_names"])
    kept = kept_summary(state)
    report = reports.write_report(
        out_dir, ids=cached_val.ids, y_true=y_true, proba=proba,
        class_names=manifest["class_names"], title="Fine-tuned model",
        paths=example_paths(manifest, cached_val.ids), history=history,
        phases=[("head", 1), ("fine-tune", head_epochs + 1)], top_n=top_n,
        config=dataclasses.asdict(config),
        extra={"job": "finetune", "cache_key": manifest["cache_key"], "cache_dir": cache_dir,
               "head_dir": head_dir, "embed_config": manifest["config"],
               "versions": manifest.get("versions"), "first_unfrozen_layer": first_unfrozen,
               "backbone_layers": len(backbone_of(model).layers), "flip_tta": flip_tta,
               "flip_tta_tried": try_flip,
               "trainable_weights": len(model.trainable_weights),
               "warm_start_max_abs_diff": warm_start_diff,
               "head_epochs": head_epochs, "finetune_epochs": len(tuned.get("loss", [])),
               "train_images": len(train_refs), **kept,
               "warm_start_score": state["warm_start"], "best_finetune_epoch":
                   state["best_finetune_epoch"], "best_finetune_score": state["best_finetune"],
               "head_vs_finetuned": {"head_accuracy": head_metrics["accuracy"],
                                     "head_macro_f1": head_metrics["macro_f1"],
                                     "changed_predictions": int(np.sum(
                                         head_proba.argmax(1) != proba.argmax(1)))}})
    _write_head_vs_finetuned(out_dir, head_metrics, report, state)
    return report


def _training_refs(manifest, config):
    train_refs, val_refs = split_refs(manifest)
    if config.train_fraction < 1.0:
        keep = fraction_subset(np.array([r.id for r in train_refs]),
                               np.array([r.label for r in train_refs]), config.train_fraction,
                               seed=config.seed)
        train_refs = [ref for ref, kept in zip(train_refs, keep) if kept]
    return train_refs, val_refs


def _compiled_model(manifest, head, config, *, steps_per_epoch):
    """The warm-started model, unfrozen and compiled under the configured strategy."""
    strategy = (tf.distribute.MirroredStrategy() if config.distribute == "mirrored"
                else tf.distribute.get_strategy())
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(manifest, head)
        first_unfrozen = set_trainable(model, config)
        compile_model(model, num_classes=len(manifest["class_names"]),
                      learning_rate=learning_rate_schedule(config, steps_per_epoch),
                      ema_momentum=ema_momentum(steps_per_epoch) if config.ema else None,
                      head_scale=config.head_learning_rate_scale,
                      label_smoothing=config.label_smoothing, float_targets=bool(config.mixup))
    return model, first_unfrozen


def _save_model(model, out_dir, manifest, config):
    model.save(os.path.join(out_dir, MODEL_FILE))
    write_json_atomic(os.path.join(out_dir, MODEL_INFO), {
        "class_names": manifest["class_names"], "image_size": manifest["config"]["image_size"],
        "cache_key": manifest["cache_key"], "embed_config": manifest["config"],
        "train_fraction": config.train_fraction})


def _write_head_vs_finetuned(out_dir, head_metrics, report, state):
    """The head against the model written as model.keras, then which candidate was kept and why.

    `kept_epoch` 0 is the warm start (the head); `best_finetune_epoch` is the best fine-tune
    epoch by validation, whether or not it was kept.
    """
    warm, tried = state["warm_start"], state["best_finetune"] or {}
    rows = [[m, head_metrics[m], report[m]] for m in ("accuracy", "macro_f1", "roc_auc")]
    rows += [["val_accuracy_warm_start", warm["val_accuracy"], ""],
             ["val_accuracy_best_finetune_epoch", "", tried.get("val_accuracy", "")],
             ["best_finetune_epoch", "", state["best_finetune_epoch"] or ""],
             ["kept", "", report["kept"]], ["kept_epoch", "", report["kept_epoch"]],
             ["kept_reason", "", report["kept_reason"]]]
    reports.write_csv(os.path.join(out_dir, "head_vs_finetuned.csv"),
                      ["metric", "head", "finetuned"], rows)
