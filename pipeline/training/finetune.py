"""Fine-tuning: the end-to-end model (`pipeline.training.end_to_end`), warm-started from the
cached-feature head, shipped as an ensemble with that head.

The data source, split, backbone, image size and augmentation come from the cache's manifest, so
training and validation images are exactly the cache's. The dense layer starts from the head that
`jobs.train_head` fitted on the cached embeddings, so phase 1 is never repeated: before any
fine-tuning step the model's validation predictions equal the head's.

What ships (`FinetuneConfig.keep`): by default the fine-tune runs its fixed schedule to the end
(no epoch is picked on validation, where a handful of images would decide), and `model.keras` is
the ensemble of the last epoch and the head, their weight fitted on validation and shrunk toward
equal weights (`pipeline.training.ensemble`); the head alone ships only where the ensemble is
less accurate on validation beyond doubt (a paired bootstrap). With `keep="best"`, the previous
rule: the best candidate by validation, the warm start included (`KeepBest`). Where the cache's
augmentation mirrors images (the default), every model averages over each image and its mirror
(`pipeline.training.tta`).
"""
import dataclasses
import math
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from pipeline.data.augment import mixup_batches
from pipeline.features import cache
from pipeline.files import write_json_atomic
from pipeline.publish import check_out_dir, published_folder, work_folder
from pipeline.training.ema import ema_momentum
from pipeline.training.ensemble import combine
from pipeline.training.end_to_end import (MODEL_FILE, MODEL_INFO, build_model, compile_model,
                                          learning_rate_schedule, set_trainable, soft_targets)
from pipeline.training.heads import fraction_subset, load_head, logits_to_proba
from pipeline.training.image_data import image_dataset, split_refs
from pipeline.training.config import FinetuneConfig, peak_learning_rate
from pipeline.training.epochs import BACKUP_DIR, fit
from pipeline.training.finetune_report import write_finetune_report
from pipeline.training.tta import flip_tta_wanted, score_candidate, with_flip_tta
from pipeline.validation import check_apart

__all__ = ["FinetuneConfig", "PIXEL_CACHE", "run_finetune"]

#: The folder of `out_dir` that holds the pixels of splits too large for memory during a run.
PIXEL_CACHE = "pixel_cache"
#: The folder of `PIXEL_CACHE` that holds a TFDS cache's images as files during a run.
TFDS_IMAGES = "tfds_images"


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

    `model.keras` is what `config.keep` ships (see the module's docstring). `report.json` says
    which it is and why (`kept`: "ensemble", "finetuned" or "warm_start"; `kept_epoch`, 0 for
    the warm start; `kept_model`, `kept_reason`, and for an ensemble `ensemble`: its weight and
    the paired evidence), as do the page's title and its first own section, and
    `head_vs_finetuned.csv`. Also writes `checkpoint.keras` (the last epoch),
    `training_log.csv`, `tensorboard/` and the full report (curves of both phases, with a marker
    where fine-tuning starts) into `out_dir`.

    Training runs in a working folder beside `out_dir` (`pipeline.publish.work_folder`: the
    checkpoints, logs and, for a TFDS cache, its images under `pixel_cache/`), which `--resume`
    continues from; `out_dir` is published whole at the end (`published_folder`), so that until
    then it holds the previous run's output, untouched.

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
        ValueError: a head of another cache or kind, changed data, bad layers, or an
            `out_dir` that is an input or holds another job's output.
    """
    check_apart(out_dir, "--out", (head_dir, "--head-dir"), (cache_dir, "--cache"))
    check_out_dir(out_dir, job="finetune", markers=(MODEL_INFO,))
    start = _start(cache_dir, head_dir)
    work = work_folder(out_dir, keep=resume)  # checkpoints and logs, kept for --resume
    pixels = os.path.join(work, PIXEL_CACHE)  # decoded once, read back by later epochs
    shutil.rmtree(pixels, ignore_errors=True)  # a killed run's partial files
    try:
        train_refs, val_refs = _training_refs(start.manifest, config,
                                              image_dir=os.path.join(pixels, TFDS_IMAGES))
        model, first_unfrozen = _compiled_model(
            start.manifest, start.head, config,
            steps_per_epoch=math.ceil(len(train_refs) / config.batch_size))
        train = _train_dataset(train_refs, start.manifest, config, pixel_cache=pixels)
        validation = _validation(val_refs, start, config, pixel_cache=pixels)
        warm_start_diff, warm_start_score = _warm_start(model, validation)
        head_epochs = len(start.head.history.get("loss", []))
        model, state = _fine_tune(model, train, work, validation, config=config,
                                  warm_start_score=warm_start_score, initial_epoch=head_epochs,
                                  resume=resume, callbacks=callbacks)
        model, combination = _combined(model, state, start, validation, config)
    finally:
        shutil.rmtree(pixels, ignore_errors=True)
    with published_folder(out_dir, job="finetune", markers=(MODEL_INFO,)) as staging:
        shutil.copytree(work, staging, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(BACKUP_DIR))
        _save_model(model, staging, start.manifest, config)
        report = write_finetune_report(
            staging, model, state, start=start, validation=validation, config=config,
            top_n=top_n, facts={"first_unfrozen_layer": first_unfrozen,
                                "warm_start_max_abs_diff": warm_start_diff,
                                "head_epochs": head_epochs, "train_images": len(train_refs),
                                "ensemble": combination, "peak_learning_rate": peak_learning_rate(
                                    config, math.ceil(len(train_refs) / config.batch_size))})
    shutil.rmtree(work, ignore_errors=True)
    return report


@dataclasses.dataclass(frozen=True)
class _Start:
    """What a fine-tune run starts from: a complete cache and the dense head trained on it."""

    cache_dir: str
    head_dir: str
    manifest: dict
    head: object


@dataclasses.dataclass(frozen=True)
class _Validation:
    """The validation images as every candidate is judged on them, and the head's view of them.

    Attributes:
        data: the dataset of (image batch, label batch), in `ids` order.
        y_true: the labels (n,).
        ids: the images' ids, from the cache (n,).
        num_classes: the class count.
        head_proba: the head's probabilities on the cached embeddings (n, num_classes).
        try_flip: whether candidates are also scored averaged over each image and its mirror.
    """

    data: tf.data.Dataset
    y_true: np.ndarray
    ids: np.ndarray
    num_classes: int
    head_proba: np.ndarray
    try_flip: bool

    def score(self, candidate, logits=None):
        """`score_candidate` on these images: `fit`'s scorer (`logits`: already computed)."""
        return score_candidate(candidate, self.data, self.y_true, self.num_classes,
                               flip_tta=self.try_flip, logits=logits)


def _start(cache_dir, head_dir):
    """Reads the cache's manifest and the head, refusing a head that cannot warm-start."""
    manifest = cache.read_manifest(cache_dir)
    head = load_head(head_dir)
    _check_head(head, manifest, head_dir)
    return _Start(cache_dir, head_dir, manifest, head)


def _train_dataset(train_refs, manifest, config, *, pixel_cache=None):
    """The shuffled training images, with soft (smoothed or mixed) targets where configured
    (`pixel_cache`: see `image_dataset`)."""
    side, face_crop = manifest["config"]["image_size"], manifest["config"].get("face_crop", False)
    train = image_dataset(train_refs, side, batch_size=config.batch_size,
                          shuffle_seed=config.seed, face_crop=face_crop, pixel_cache=pixel_cache)
    if config.label_smoothing or config.mixup:
        train = soft_targets(train, len(manifest["class_names"]))
    if config.mixup:
        train = mixup_batches(train, alpha=config.mixup, seed=config.seed)
    return train


def _validation(val_refs, start, config, *, pixel_cache=None):
    """The validation images (decoded as in training) and the head's probabilities on them."""
    manifest = start.manifest
    side, face_crop = manifest["config"]["image_size"], manifest["config"].get("face_crop", False)
    data = image_dataset(val_refs, side, batch_size=config.batch_size, face_crop=face_crop,
                         pixel_cache=pixel_cache)
    y_true = np.array([r.label for r in val_refs])
    cached_val = cache.load_split(start.cache_dir, "val", clean_only=True)
    return _Validation(data, y_true, cached_val.ids, len(manifest["class_names"]),
                       start.head.predict_proba(cached_val.embeddings),
                       flip_tta_wanted(config.tta, manifest["config"]))


def _warm_start(model, validation):
    """The warm-started model against the head: the largest probability difference on
    validation (0 up to float error), and its score as candidate 0."""
    logits = model.predict(validation.data, verbose=0)
    diff = float(np.abs(logits_to_proba(logits, validation.num_classes)
                        - validation.head_proba).max())
    _, score = validation.score(model, logits)
    return diff, score


def _fine_tune(model, train, out_dir, validation, *, config, warm_start_score, initial_epoch,
               resume, callbacks):
    """Trains and keeps the best candidate (`epochs.fit`); returns it, mirror-averaging where
    that scored better, and the selection's state."""
    _, state = fit(model, train, out_dir, config=config, scorer=validation.score,
                   warm_start_score=warm_start_score, initial_epoch=initial_epoch, resume=resume,
                   callbacks=callbacks)
    if state["best"].get("flip_tta", False):  # a state from before TTA has none
        model = with_flip_tta(model)
    return model, state


def _combined(model, state, start, validation, config):
    """What ships with `keep="ensemble"`: the fine-tuned model combined with its head
    (`pipeline.training.ensemble.combine`), and the decision's facts; otherwise `model` as
    kept, and None."""
    if config.keep != "ensemble" or state["kept_epoch"] == 0:
        return model, None
    head = build_model(start.manifest, start.head)  # the warm start, never trained
    if validation.try_flip:
        head = with_flip_tta(head)
    return combine(model, head, validation.data, validation.y_true, validation.num_classes)


def _training_refs(manifest, config, *, image_dir=None):
    """The training refs (the configured fraction of them) and the validation refs
    (`image_dir`: see `split_refs`)."""
    train_refs, val_refs = split_refs(manifest, image_dir=image_dir)
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

