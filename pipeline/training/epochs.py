"""The fine-tune epochs: `fit` trains and keeps the last epoch, or the best one by validation.

Each epoch's candidate (its weights, or their moving average with `FinetuneConfig.ema`) is
scored by the caller's scorer and kept by `pipeline.training.selection.KeepBest`, the warm start
being candidate 0; checkpoints, CSV and TensorBoard logs and a resumable backup are written on the
way, and one plain line per epoch is printed.
"""
import os
import shutil
import time

import keras

from pipeline.training.ema import EmaCandidates
from pipeline.training.selection import KeepBest

__all__ = ["BACKUP_DIR", "fit"]

#: The folder of a run's working folder where Keras keeps what `--resume` restores.
BACKUP_DIR = "backup"


class _EpochLines(keras.callbacks.Callback):
    """One plain line per fine-tune epoch (instead of Keras's progress output)."""

    def __init__(self, initial_epoch, epochs):
        super().__init__()
        self._initial_epoch, self._epochs = initial_epoch, epochs
        self._start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        figures = ", ".join(f"{name} {logs[name]:.4f}" for name in
                            ("loss", "accuracy", "val_loss", "val_accuracy", "val_tta_accuracy")
                            if name in logs)
        print(f"fine-tune epoch {epoch - self._initial_epoch + 1}/{self._epochs}: {figures} "
              f"({time.monotonic() - self._start:.0f} s)", flush=True)


def fit(model, train, out_dir, *, config, scorer, warm_start_score, initial_epoch=0,
        resume=False, callbacks=()):
    """Fine-tunes, keeping the last epoch (`config.keep="ensemble"`) or the best candidate by
    validation, the warm start included (`"best"`).

    `KeepBest` scores the warm start as candidate 0 and every epoch after it; with `"best"` it
    keeps the best candidate's weights and stops after `config.patience` epochs without a new
    best fine-tune epoch; at the end the kept weights are loaded into `model` (the warm start's
    when no epoch beat it). Per-epoch
    checkpoints, CSV and TensorBoard logs are written too. A run that is killed can be resumed
    (`resume=True`): Keras's `BackupAndRestore` brings back the model, the optimizer and the
    epoch from `out_dir/backup`, and `KeepBest` its state.

    Args:
        model: a compiled model, warm-started from the head.
        train: the training dataset.
        out_dir: the output folder.
        config: the `FinetuneConfig`.
        scorer: `scorer(model) -> (logs, score)` after each epoch: the validation figures
            logged, and the score of the model that would ship (see `KeepBest`).
        warm_start_score: the score of the warm-started model.
        initial_epoch: epochs already run by the head, so the curves of both phases join.
            Defaults to `0`.
        resume: continue from `out_dir/backup` if it exists. Defaults to `False`.
        callbacks: extra callbacks (a test seam). Defaults to `()`.

    Returns:
        `(history, state)`: the history dict, with `epoch` (the epoch numbers run in this call),
        and `KeepBest`'s state (see `kept_summary`).
    """
    backup = os.path.join(out_dir, BACKUP_DIR)
    resume = resume and os.path.isdir(backup)
    if not resume and os.path.isdir(backup):
        shutil.rmtree(backup)
    keep = KeepBest(out_dir, patience=config.patience, initial_epoch=initial_epoch,
                    scorer=scorer, keep_last=config.keep == "ensemble")
    keep.start(model, warm_start_score, resume=resume)
    epochs_seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: epochs_seen.append(epoch + 1))
    lines = _EpochLines(initial_epoch, config.epochs)
    history = model.fit(
        train, initial_epoch=initial_epoch,
        epochs=initial_epoch + config.epochs, verbose=0, shuffle=False,
        callbacks=[
            *_selection(keep, config), keras.callbacks.BackupAndRestore(backup),
            keras.callbacks.ModelCheckpoint(os.path.join(out_dir, "checkpoint.keras")),
            keras.callbacks.CSVLogger(os.path.join(out_dir, "training_log.csv"), append=resume),
            keras.callbacks.TensorBoard(os.path.join(out_dir, "tensorboard")),
            record, lines, *callbacks])
    result = {k: [float(v) for v in values] for k, values in history.history.items()}
    result["epoch"] = epochs_seen
    return result, keep.restore(model)


def _selection(keep, config):
    """`KeepBest`, between the callbacks that swap the weights' moving average in and out."""
    if not config.ema:
        return [keep]
    ema = EmaCandidates()
    return [ema.swap_in, keep, ema.swap_out]
