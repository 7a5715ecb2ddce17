"""The shipped model as one ensemble: the fine-tuned model and the head it started from.

On a few hundred validation images, picking the head *or* the fine-tuned model is decided by
noise (two images in 170 moved a food set's test accuracy by two points). Averaging the two
models' probabilities is more stable than picking either, and usually better than both (the
WiSE-FT observation: an ensemble of a linear head on frozen features and the fine-tuned model
gains in distribution too). So `model.keras` is one Keras model whose probabilities are

    w * p_finetuned + (1 - w) * p_head

where p_head comes from the frozen backbone and the head exactly as `jobs.train_head` saved them,
and each member averages its logits over the image and its mirror where the cache's augmentation
mirrors (`pipeline.training.tta`). `choose_weight` fits w on validation by log loss, over
bootstrap resamples of the validation images, and ships their mean: where a few images decide
the fit, the resamples disagree and w stays between the members; where one member is clearly
better (a fine-tune that adds 14 points to a weak head), w follows it. `ensemble_model` builds
the model; `trained_model` finds the fine-tuned member inside whatever was shipped.
"""
import keras
import numpy as np

from pipeline.training.tta import has_flip_tta  # also registers the mirror's layer for loading

__all__ = ["RESAMPLES", "FINETUNED_MEMBER", "HEAD_MEMBER", "ProbabilityMix",
           "choose_weight", "fitted_weight", "ensemble_model", "is_ensemble", "trained_model", "members", "combine",
           "combined_summary"]

#: Bootstrap resamples of the validation images over which the fitted weight is averaged.
RESAMPLES = 200
#: The names of the ensemble's two members inside `model.keras`.
FINETUNED_MEMBER, HEAD_MEMBER = "member_finetuned", "member_head"
#: The weights `choose_weight` tries for the fine-tuned member.
_GRID = np.linspace(0.0, 1.0, 21)
#: Probabilities are kept this far from 0 and 1 before their logarithm (float32).
_EPSILON = 1e-7


def _probabilities(logits, num_classes):
    if num_classes == 2:
        return keras.ops.sigmoid(logits)
    return keras.ops.softmax(logits, axis=-1)


@keras.saving.register_keras_serializable(package="pipeline")
class ProbabilityMix(keras.layers.Layer):
    """Mixes two models' logits as probabilities, `weight` on the first, and returns the logits
    of the mixture (one logit for two classes, as every model of the project does), so that
    `pipeline.training.heads.logits_to_proba` gives back the mixed probabilities.

    Args:
        weight: the first input's weight in [0, 1].
        num_classes: the class count.
    """

    def __init__(self, weight, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.weight, self.num_classes = float(weight), int(num_classes)

    def call(self, inputs):
        first, second = (_probabilities(logits, self.num_classes) for logits in inputs)
        mixed = keras.ops.clip(self.weight * first + (1.0 - self.weight) * second,
                               _EPSILON, 1.0 - _EPSILON)
        if self.num_classes == 2:
            return keras.ops.log(mixed) - keras.ops.log(1.0 - mixed)
        return keras.ops.log(mixed)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "num_classes": self.num_classes}


def _image_log_losses(y_true, proba):
    """Each image's log loss: minus the log of its true class's probability."""
    return -np.log(np.clip(proba[np.arange(len(y_true)), y_true], 1e-15, 1.0))


def fitted_weight(y_true, finetuned_proba, head_proba):
    """The fine-tuned member's weight of lowest mean log loss, on a grid of steps of 0.05."""
    losses = [_image_log_losses(y_true, w * finetuned_proba + (1 - w) * head_proba).mean()
              for w in _GRID]
    return float(_GRID[int(np.argmin(losses))])


def choose_weight(y_true, finetuned_proba, head_proba, *, resamples=RESAMPLES, seed=0):
    """The fine-tuned member's weight: fitted on validation, then bagged over its images.

    The weight of lowest validation log loss is fitted again on `resamples` bootstrap resamples
    of the validation images, and the shipped weight is their mean. Where a few images decide
    the fit, the resamples disagree and the mean stays between the two members (toward equal
    weights); where the evidence is clear (one member far better), it stays at the fit.

    Args:
        y_true: the validation labels (n,).
        finetuned_proba, head_proba: each member's probabilities on those images (n, k).
        resamples: bootstrap resamples. Defaults to `RESAMPLES`.
        seed: of the resamples. Defaults to `0`.

    Returns:
        `{"weight", "fitted_weight", "resamples", "images"}`: the weight `model.keras` uses, and
        the one fitted on all the validation images.
    """
    y_true = np.asarray(y_true)
    draws = np.random.default_rng(seed).integers(0, len(y_true), (resamples, len(y_true)))
    bagged = np.mean([fitted_weight(y_true[d], finetuned_proba[d], head_proba[d])
                      for d in draws])
    return {"weight": round(float(bagged), 4),
            "fitted_weight": fitted_weight(y_true, finetuned_proba, head_proba),
            "resamples": resamples, "images": len(y_true)}


def ensemble_model(finetuned, head, weight, num_classes):
    """One model whose probabilities are `weight * finetuned's + (1 - weight) * head's`.

    Args:
        finetuned: the fine-tuned model (logits; flip-averaged or not).
        head: the warm-started model as built from the head, never trained further (logits).
        weight: the fine-tuned member's weight.
        num_classes: the class count.

    Returns:
        A `keras.Model` from images to the mixture's logits.
    """
    finetuned.name, head.name = FINETUNED_MEMBER, HEAD_MEMBER
    inputs = keras.Input(finetuned.input_shape[1:], name="image")
    mixed = ProbabilityMix(weight, num_classes, name="ensemble_mix")(
        [finetuned(inputs), head(inputs)])
    return keras.Model(inputs, mixed, name="ensemble")


def is_ensemble(model):
    """Whether `model` was built by `ensemble_model`."""
    return any(layer.name == "ensemble_mix" for layer in model.layers)


def members(model):
    """The `(fine-tuned, head)` members of an ensemble."""
    layers = {layer.name: layer for layer in model.layers}
    return layers[FINETUNED_MEMBER], layers[HEAD_MEMBER]


def trained_model(model):
    """The model that was trained, inside what `model.keras` holds: the ensemble's fine-tuned
    member, without its mirror-averaging wrapper (`pipeline.training.tta`); or `model` itself."""
    if is_ensemble(model):
        return trained_model(members(model)[0])
    if has_flip_tta(model):
        return next(layer for layer in model.layers if isinstance(layer, keras.Model))
    return model


def combine(finetuned, head, validation, y_true, num_classes):
    """The model to ship from the fine-tuned model and the head, decided on validation.

    The weight comes from `choose_weight`. The ensemble ships unless a paired bootstrap on the
    validation images says, at 95 %, that it is worse than the head alone: less accurate (the
    interval of the accuracy difference lies below zero) or of higher log loss (the interval of
    the mean per-image difference lies above zero, which a handful of images can show where
    accuracy cannot); then the head ships, as it does where the weight is 0. Where the weight is
    1 (every resample gives the fine-tuned model all of it), the fine-tuned model ships alone
    (one backbone pass instead of two).

    Args:
        finetuned, head: the two members as they would ship (flip-averaged or not).
        validation: the validation dataset of (image batch, label batch).
        y_true: its labels.
        num_classes: the class count.

    Returns:
        `(model, facts)`: the model to save, and `facts` for the report: `shipped`
        ("ensemble", "finetuned" or "warm_start"), the weight's fields, the validation `accuracy` of
        `ensemble`, `finetuned` and `head`, and the paired comparisons `vs_head` and
        `vs_finetuned` (`difference`, `low`, `high`, `fixed`, `broken`, `mcnemar_p`).
    """
    from pipeline.reports.intervals import paired_comparison
    from pipeline.training.heads import logits_to_proba

    def proba(model):
        return logits_to_proba(model.predict(validation, verbose=0),
                               num_classes).astype(np.float64)

    finetuned_proba, head_proba = proba(finetuned), proba(head)
    if not np.isfinite(finetuned_proba).all():  # a diverged fine-tune: nothing to weigh
        return head, {"shipped": "warm_start", "images": len(y_true), "diverged": True}
    weight = choose_weight(y_true, finetuned_proba, head_proba)
    mixed = weight["weight"] * finetuned_proba + (1 - weight["weight"]) * head_proba
    probabilities = {"ensemble": mixed, "finetuned": finetuned_proba, "head": head_proba}
    predicted = {name: p.argmax(1) for name, p in probabilities.items()}

    def versus(other):
        found = paired_comparison(y_true, predicted["ensemble"], predicted[other], num_classes)
        accuracy = found["metrics"]["accuracy"]
        log_loss = _paired_log_loss(y_true, mixed, probabilities[other])
        return {"difference": accuracy["difference"], "low": accuracy["low"],
                "high": accuracy["high"], "fixed": found["fixed"], "broken": found["broken"],
                "mcnemar_p": found["mcnemar_p"], **log_loss}

    facts = {**weight, "accuracy": {name: float(np.mean(p == y_true))
                                    for name, p in predicted.items()},
             "vs_head": versus("head"), "vs_finetuned": versus("finetuned")}
    versus_head = facts["vs_head"]
    if versus_head["high"] < 0 or versus_head["log_loss_low"] > 0 or weight["weight"] <= 0:
        return head, {**facts, "shipped": "warm_start"}
    if weight["weight"] >= 1:
        return finetuned, {**facts, "shipped": "finetuned"}
    return (ensemble_model(finetuned, head, weight["weight"], num_classes),
            {**facts, "shipped": "ensemble"})


def _paired_log_loss(y_true, proba, other, *, resamples=1000, seed=0):
    """The mean per-image log loss of `proba` minus `other`'s on the same images, with its
    95 % paired-bootstrap interval: `log_loss_difference`, `log_loss_low`, `log_loss_high`."""
    differences = _image_log_losses(y_true, proba) - _image_log_losses(y_true, other)
    draws = np.random.default_rng(seed).integers(0, len(y_true), (resamples, len(y_true)))
    low, high = np.percentile(differences[draws].mean(axis=1), [2.5, 97.5])
    return {"log_loss_difference": float(differences.mean()), "log_loss_low": float(low),
            "log_loss_high": float(high)}


def combined_summary(facts, *, epoch, ema=False, flip_tta=False):
    """`kept`, `kept_epoch`, `kept_model` and `kept_reason` (as
    `pipeline.training.selection.kept_summary` gives them) of what `combine` shipped."""
    if facts.get("diverged"):
        return {"kept": "warm_start", "kept_epoch": 0, "kept_model": "the warm-started head"
                + (", averaged over each image and its mirror" if flip_tta else ""),
                "kept_reason": "the fine-tuned model's outputs are not finite (the fine-tune "
                "diverged): model.keras is the warm-started head"}
    weight, accuracy, versus = facts["weight"], facts["accuracy"], facts["vs_head"]
    member = f"fine-tune epoch {epoch}" + (" (its moving-average weights)" if ema else "")
    evidence = (f"on {facts['images']} validation images the ensemble scores "
                f"{accuracy['ensemble']:.4f}, the head {accuracy['head']:.4f} and the fine-tuned "
                f"model {accuracy['finetuned']:.4f}; ensemble - head: "
                f"{versus['difference']:+.4f} (95 % paired interval {versus['low']:+.4f} to "
                f"{versus['high']:+.4f}; {versus['fixed']} images fixed, {versus['broken']} "
                "broken)")
    if facts["shipped"] == "warm_start":
        kept, model = "warm_start", "the warm-started head"
        why = ("the fine-tuned model gets no weight in any bootstrap resample" if weight <= 0
               else "the ensemble of the fine-tuned model and the head is worse than the head "
               "alone, beyond doubt")
        reason = (f"{why}: {evidence}; log loss ensemble - head "
                  f"{versus['log_loss_difference']:+.4f} (95 % paired interval "
                  f"{versus['log_loss_low']:+.4f} to {versus['log_loss_high']:+.4f}); "
                  "model.keras is the warm-started head")
        epoch = 0
    elif facts["shipped"] == "finetuned":
        kept, model = "finetuned", f"fine-tune epoch {epoch}"
        reason = (f"{member} alone: every one of {facts['resamples']} bootstrap resamples of "
                  f"the {facts['images']} validation images gives it all the weight against "
                  f"the head; {evidence}")
    else:
        kept = "ensemble"
        model = (f"the ensemble of fine-tune epoch {epoch} and the head (weights {weight:.2f} "
                 f"and {1 - weight:.2f})")
        reason = (f"{member} and the head it started from, their probabilities averaged: weight "
                  f"{weight:.2f} on the fine-tuned model (the mean of its log-loss fit over "
                  f"{facts['resamples']} bootstrap resamples of the {facts['images']} validation "
                  f"images; {facts['fitted_weight']:.2f} fitted on all of them); {evidence} (the "
                  "weight was fitted on these images: held-out test images give the unbiased "
                  "figure)")
    if flip_tta:
        model += ", averaged over each image and its mirror"
    return {"kept": kept, "kept_epoch": epoch, "kept_reason": reason, "kept_model": model}
