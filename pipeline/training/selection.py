"""Model selection for fine-tuning: the warm start is a candidate like every epoch.

`validation_score` scores logits the way `fit` reports epochs; `KeepBest` keeps the weights of
the candidate the rule keeps: with `keep_last` (the default recipe, `keep="ensemble"`) every
epoch in turn, so the run ends with its last epoch and nothing is picked on validation; otherwise
the best candidate by validation so far (the warm-started head is candidate 0), stopping after
`patience` epochs without a new best fine-tune epoch. `kept_summary` says which candidate was
kept and why, in one line, for `keep="best"` (`pipeline.training.ensemble.combined_summary` for
the ensemble).
"""
import glob
import json
import os

import keras
import numpy as np

from pipeline.files import write_json_atomic
from pipeline.training.heads import loss_and_metric

__all__ = ["validation_score", "beats", "KeepBest", "kept_summary"]


def validation_score(logits, labels, num_classes):
    """`{"val_accuracy", "val_loss"}` of logits, with the loss and metric that `fit` reports."""
    loss, metric = loss_and_metric(num_classes)
    labels = np.asarray(labels).reshape(-1, 1) if num_classes == 2 else np.asarray(labels)
    metric.update_state(labels, logits)
    return {"val_accuracy": float(metric.result()), "val_loss": float(loss(labels, logits))}


def beats(candidate, best):
    """Whether a candidate's validation score beats `best`: accuracy first, then lower loss."""
    accuracy, loss = candidate["val_accuracy"], candidate["val_loss"]
    if not (np.isfinite(accuracy) and np.isfinite(loss)):
        return False
    return accuracy > best["val_accuracy"] or (accuracy == best["val_accuracy"]
                                               and loss < best["val_loss"])


class KeepBest(keras.callbacks.Callback):
    """Keeps the best model by validation, the warm start included, and stops early.

    Candidate 0 is the warm-started model (equal to the head), scored before any step by
    `start`; fine-tune epoch k is kept only when it beats every earlier candidate: a higher
    `val_accuracy`, or the same and a lower `val_loss` (a non-finite loss never wins). Training
    stops after `patience` epochs without a new best fine-tune epoch (not counted from the warm
    start: the first epochs of a fine-tune often dip below the head before they climb past it).
    The best weights and the state (`keep_best.json`) live in `directory`, so a resumed run goes
    on where it stopped.

    Args:
        directory: where the best weights and the state are written.
        patience: epochs without a new best fine-tune epoch before stopping.
        initial_epoch: the Keras epoch index of fine-tune epoch 1 (the head's epoch count).
        scorer: `scorer(model) -> (logs, score)`: validation figures to add to the epoch's logs
            (seen by the callbacks after this one) and the score that decides. None: the score is
            the logs' own `val_accuracy` and `val_loss` (`fit` with `validation_data`).
            Defaults to None.
        keep_last: keep every epoch's weights in turn, and never stop early: the run ends with
            its last epoch, whatever validation says (validation is still scored and logged,
            and the best fine-tune epoch still recorded). Defaults to `False`.

    Example:
        >>> keep = KeepBest("runs/ft", patience=3, initial_epoch=19)
        >>> keep.start(model, validation_score(logits, labels, 2), resume=False)
        >>> model.fit(train, validation_data=val, initial_epoch=19, callbacks=[keep])
        >>> state = keep.restore(model)  # state["kept_epoch"]: 0 means the warm start
    """

    def __init__(self, directory, *, patience, initial_epoch, scorer=None, keep_last=False):
        super().__init__()
        self.directory, self.patience, self.initial_epoch = directory, patience, initial_epoch
        self.scorer, self.keep_last = scorer, keep_last
        self._state_path = os.path.join(directory, "keep_best.json")
        self.state = None

    def start(self, model, warm_start_score, *, resume):
        """Scores the warm start as candidate 0, or, resuming, reads the saved state."""
        if resume and os.path.isfile(self._state_path):
            with open(self._state_path) as handle:
                self.state = json.load(handle)
            return
        for stale in glob.glob(os.path.join(self.directory, "best-epoch*.weights.h5")):
            os.remove(stale)
        self.state = {"warm_start": warm_start_score, "best": warm_start_score,
                      "kept_epoch": 0, "best_finetune": None, "best_finetune_epoch": None,
                      "last_epoch": 0, "weights": None}
        self._save_weights(model, 0)

    def on_epoch_end(self, epoch, logs=None):
        finetune_epoch = epoch - self.initial_epoch + 1
        if self.scorer is None:
            score = {k: float(logs[k]) for k in ("val_accuracy", "val_loss")}
        else:
            figures, score = self.scorer(self.model)
            logs.update(figures)
        state = self.state
        if state["best_finetune"] is None or beats(score, state["best_finetune"]):
            state["best_finetune"], state["best_finetune_epoch"] = score, finetune_epoch
        if self.keep_last or beats(score, state["best"]):
            state["best"] = score
            self._save_weights(self.model, finetune_epoch)
        state["last_epoch"] = finetune_epoch
        write_json_atomic(self._state_path, state)
        if not self.keep_last and finetune_epoch - state["best_finetune_epoch"] >= self.patience:
            self.model.stop_training = True

    def restore(self, model):
        """Loads the kept weights into `model` and returns the state."""
        model.load_weights(os.path.join(self.directory, self.state["weights"]))
        return self.state

    def _save_weights(self, model, finetune_epoch):
        name = f"best-epoch{finetune_epoch}.weights.h5"
        model.save_weights(os.path.join(self.directory, name))
        old, self.state["weights"] = self.state["weights"], name
        self.state["kept_epoch"] = finetune_epoch
        write_json_atomic(self._state_path, self.state)
        if old and old != name:
            os.remove(os.path.join(self.directory, old))


def kept_summary(state, *, ema=False):
    """`kept` ("finetuned" or "warm_start"), `kept_epoch`, a one-line `kept_reason`, and
    `kept_model`: what `model.keras` is, as a phrase for titles ("the warm-started head",
    "fine-tune epoch 4 with its moving-average (EMA) weights").

    Args:
        state: `KeepBest`'s state.
        ema: the epochs' candidates were their weights' moving average. Defaults to `False`.
    """
    warm, best = state["warm_start"], state["best"]
    tried = state["best_finetune"]
    if state["kept_epoch"] == 0:
        tried_text = (f"best fine-tune epoch {state['best_finetune_epoch']}: accuracy "
                      f"{tried['val_accuracy']:.4f}, loss {tried['val_loss']:.4f}"
                      if tried else "no fine-tune epoch ran")
        kept, model = "warm_start", "the warm-started head"
        reason = (f"no fine-tune epoch beat the warm-started head on validation (accuracy "
                  f"{warm['val_accuracy']:.4f}, loss {warm['val_loss']:.4f}; {tried_text}): "
                  "model.keras is the warm-started head")
    else:
        kept = "finetuned"
        model = (f"fine-tune epoch {state['kept_epoch']}"
                 + (" with its moving-average (EMA) weights" if ema else ""))
        reason = (f"fine-tune epoch {state['kept_epoch']} beat the warm-started head on "
                  f"validation: accuracy {best['val_accuracy']:.4f} (loss "
                  f"{best['val_loss']:.4f}) against {warm['val_accuracy']:.4f} (loss "
                  f"{warm['val_loss']:.4f})")
    if best.get("flip_tta"):  # scored with the mirror (`pipeline.training.tta`)
        reason += "; it averages over each image and its mirror, which scored better on validation"
        model += ", averaged over each image and its mirror"
    return {"kept": kept, "kept_epoch": state["kept_epoch"], "kept_reason": reason,
            "kept_model": model}
