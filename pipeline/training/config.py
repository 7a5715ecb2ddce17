"""The typed, frozen configuration of the fine-tune job (no TensorFlow here: the command line
and a report read it without building anything).
"""
import dataclasses

from pipeline.fields import check_choices, field
from pipeline.validation import check_scalar

__all__ = ["FinetuneConfig", "KEEP_CHOICES", "SCHEDULES", "STRATEGIES", "TTA_CHOICES",
           "peak_learning_rate"]

#: What `model.keras` is: the ensemble of the last epoch and the head, or the best candidate by
#: validation (`pipeline.training.finetune`).
KEEP_CHOICES = ("ensemble", "best")

#: Distribution strategies of the fine-tune.
STRATEGIES = ("none", "mirrored")
#: Learning-rate schedules.
SCHEDULES = ("constant", "cosine")
#: Test-time augmentation choices of the shipped model (`pipeline.training.tta`).
TTA_CHOICES = ("auto", "flip", "none")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """How the end-to-end model is fine-tuned.

    The defaults come from measurement (../shared/BASELINES.md, bench/finetune_genki.py,
    bench/recipe.py and the README's fine-tune levers): with a small backbone, Adam on all layers
    clearly beats the seeds' 1e-5 on the top layers. The peak rate follows the data (`"auto"`,
    `peak_learning_rate`): on small sets any peak above 1e-4 first knocks the warm-started head
    down (flowers at 75 training images per class, 12 steps per epoch, training loss over epochs
    1-3: 0.133, 0.132, 0.139 at 1e-4; 0.221, 0.236, 0.195 at 3e-4; 0.133, 0.158, 0.261 at 2e-4
    with two warm-up epochs), while GENKI-4K (60 steps per epoch) needs 3e-4 (test accuracy
    0.90 at 1e-4 against 0.93-0.95 at 3e-4). The fixed count of 6 epochs ends where the cosine
    decay does, so that no epoch is picked on validation (`keep`).

    Attributes:
        epochs: fine-tuning epochs (after the head's); with `keep="best"`, at most this many
            (early stopping may end sooner). Defaults to `6`.
        learning_rate: Adam's peak learning rate, or `"auto"`: 1e-4 per 20 training steps per
            epoch, from 1e-4 (up to 20 steps, e.g. 640 images at batch 32) to 3e-4 (60 steps
            and more); see `peak_learning_rate`. Defaults to `"auto"`.
        fine_tune_at: backbone layers before this index stay frozen; None: see `unfreeze_last`.
        unfreeze_last: unfreeze only the last N backbone layers; None (and no `fine_tune_at`)
            unfreezes all. Defaults to None.
        batch_size: Defaults to `32`.
        patience: with `keep="best"`, stop after this many epochs without a new best
            fine-tune epoch (validation accuracy, then loss). Defaults to `3`.
        distribute: `"none"` or `"mirrored"` (`tf.distribute.MirroredStrategy`). Defaults to
            `"none"`.
        train_fraction: fine-tune on this deterministic stratified fraction of the training
            images (the same subset as the head's `--train-fraction`). Defaults to `1.0`.
        schedule: `"constant"` (Adam at `learning_rate`) or `"cosine"` (cosine decay to 0 over
            `epochs`). Defaults to `"cosine"`.
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
        tta: test-time augmentation of the shipped model: `"auto"` (average over each image and
            its mirror when the cache's augmentation mirrors images), `"flip"` (always) or
            `"none"`. Defaults to `"auto"`.
        keep: what `model.keras` is: `"ensemble"` (the last epoch of the schedule and the head,
            their outputs averaged with a weight fitted on validation and shrunk toward equal
            weights; the head alone where the ensemble is worse beyond doubt) or `"best"` (the
            best candidate by validation accuracy, the warm start included, with early stopping
            after `patience` epochs). Defaults to `"ensemble"`.
        seed: Defaults to `123`.
    """

    epochs: int = field(6, help="fine-tuning epochs (with --keep best: at most this many)")
    learning_rate: float | str = field("auto", help="Adam's peak learning rate; auto: 1e-4 per "
                                       "20 training steps per epoch, from 1e-4 to 3e-4")
    fine_tune_at: int | None = field(None, help="backbone layers before this index stay frozen "
                                     "(default: none)")
    unfreeze_last: int | None = field(None, help="unfreeze only the last N backbone layers")
    batch_size: int = field(32, help="training batch size")
    patience: int = field(3, help="with --keep best: stop after this many epochs without a new "
                          "best")
    distribute: str = field("none", choices=STRATEGIES, help="mirrored: "
                            "tf.distribute.MirroredStrategy over the visible GPUs")
    train_fraction: float = field(1.0, help="fine-tune on this stratified fraction of the "
                                  "training images")
    schedule: str = field("cosine", choices=SCHEDULES, help="cosine: decay the learning rate "
                          "to 0 over --epochs")
    warmup_epochs: int = field(1, help="linear warm-up epochs first (either schedule)")
    head_learning_rate_scale: float = field(1.0, help="the dense layer learns at this multiple "
                                            "of --learning-rate (discriminative learning rates)")
    label_smoothing: float = field(0.0, help="smooth the training targets by this much (e.g. "
                                   "0.1)")
    mixup: float = field(0.0, help="mix training images and targets within batches, weights "
                         "from Beta(A, A) (e.g. 0.2; 0: off)")
    ema: bool = field(True, help="score and keep each epoch's moving average of the weights "
                      "(over about one epoch of steps) instead of its last weights")
    tta: str = field("auto", choices=TTA_CHOICES, help="test-time augmentation of model.keras: "
                     "auto averages over each image and its mirror when the cache's "
                     "augmentation mirrors images; flip always; none never")
    keep: str = field("ensemble", choices=KEEP_CHOICES, help="ensemble: model.keras averages "
                      "the last epoch and the head (weight fitted on validation, shrunk toward "
                      "equal); best: the best epoch or the head by validation, with early "
                      "stopping (--patience)")
    seed: int = field(123, help="seed of the subset, shuffling and mixup")

    def __post_init__(self):
        check_choices(self)
        check_scalar(self.epochs, "epochs", int, min_val=0)
        if self.learning_rate != "auto":
            if isinstance(self.learning_rate, str):
                raise ValueError(f"learning_rate: expected a rate or 'auto'; got "
                                 f"{self.learning_rate!r}")
            check_scalar(self.learning_rate, "learning_rate", float, min_val=0.0,
                         include_min=False)
        if self.fine_tune_at is not None and self.unfreeze_last is not None:
            raise ValueError("fine_tune_at and unfreeze_last: expected at most one; got both")
        if self.fine_tune_at is not None:
            check_scalar(self.fine_tune_at, "fine_tune_at", int, min_val=0)
        if self.unfreeze_last is not None:
            check_scalar(self.unfreeze_last, "unfreeze_last", int, min_val=0)
        check_scalar(self.batch_size, "batch_size", int, min_val=1)
        check_scalar(self.patience, "patience", int, min_val=1)
        check_scalar(self.head_learning_rate_scale, "head_learning_rate_scale", float,
                     min_val=0.0, include_min=False)
        check_scalar(self.label_smoothing, "label_smoothing", float, min_val=0.0, max_val=1.0,
                     include_max=False)
        check_scalar(self.mixup, "mixup", float, min_val=0.0)
        check_scalar(self.warmup_epochs, "warmup_epochs", int, min_val=0)
        check_scalar(self.train_fraction, "train_fraction", float, min_val=0.0, max_val=1.0,
                     include_min=False)


def peak_learning_rate(config, steps_per_epoch):
    """The peak learning rate of `config` for a training split of `steps_per_epoch` batches:
    its own, or for `"auto"` 1e-4 per 20 steps per epoch, clipped to [1e-4, 3e-4] (small sets,
    whose warm-started head a higher rate first knocks down, train at 1e-4; GENKI-4K's 60 steps
    at 3e-4)."""
    if config.learning_rate != "auto":
        return config.learning_rate
    return float(min(3e-4, max(1e-4, 1e-4 * steps_per_epoch / 20)))
