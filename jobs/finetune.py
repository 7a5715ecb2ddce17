"""Fine-tune job: `python -m jobs.finetune --cache DIR --head DIR --out DIR [--epochs E]`.

Builds the end-to-end model of a cache (same images, split, backbone, size and augmentation),
warm-starts its dense layer from the head trained by `jobs.train_head`, unfreezes the backbone
(all of it by default; `--fine-tune-at N` or `--unfreeze-last N` for less; BatchNorm stays frozen
in inference mode) and trains with Adam, early stopping, per-epoch checkpoints and logs. The
warm-started model (equal to the head) is a candidate like every epoch: `model.keras` is the best
by validation accuracy (then loss), and the job says in one line which was kept and why (also in
`report.json`: `kept`, `kept_epoch`, `kept_reason`). Writes `model.keras`, `report.json`
(top-level `accuracy`) and the full report. `--resume` continues an interrupted run. The last
line printed is the path of the report's `index.html`.
"""
import argparse
import os
import sys
from argparse import RawDescriptionHelpFormatter

from jobs import add_verbose_flag, configure_output
from pipeline.training.finetune import FinetuneConfig, run_finetune
from pipeline.training.tta import TTA_CHOICES

EXAMPLE = """example (warm-started from a head trained on the same cache):
  python -m jobs.finetune --cache cache/<key> --head runs/head --out runs/finetune --epochs 10
  python -m jobs.finetune --cache cache/<key> --list-layers --fine-tune-at 60
"""


def build_parser():
    defaults = FinetuneConfig()
    parser = argparse.ArgumentParser(prog="python -m jobs.finetune",
                                     description=__doc__.split("\n")[0],
                                     epilog=EXAMPLE, formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("--cache", help="cache folder written by jobs.embed")
    parser.add_argument("--head", help="dense head folder written by jobs.train_head")
    parser.add_argument("--out", help="output folder")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--fine-tune-at", type=int, default=None,
                       help="backbone layers before this index stay frozen (default: none)")
    group.add_argument("--unfreeze-last", type=int, default=None,
                       help="unfreeze only the last N backbone layers")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--patience", type=int, default=defaults.patience)
    parser.add_argument("--distribute", choices=("none", "mirrored"), default="none",
                        help="mirrored: tf.distribute.MirroredStrategy over the visible GPUs")
    parser.add_argument("--train-fraction", type=float, default=defaults.train_fraction,
                        help="fine-tune on this stratified fraction of the training images")
    parser.add_argument("--schedule", choices=("constant", "cosine"), default=defaults.schedule,
                        help="cosine: decay the learning rate to 0 over --epochs")
    parser.add_argument("--warmup-epochs", type=int, default=defaults.warmup_epochs,
                        help="linear warm-up epochs first (either schedule)")
    parser.add_argument("--head-learning-rate-scale", type=float,
                        default=defaults.head_learning_rate_scale,
                        help="the dense layer learns at this multiple of --learning-rate "
                        "(discriminative learning rates)")
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing,
                        help="smooth the training targets by this much (e.g. 0.1)")
    parser.add_argument("--mixup", type=float, default=defaults.mixup,
                        help="mix training images and targets within batches, weights from "
                        "Beta(A, A) (e.g. 0.2; 0: off)")
    parser.add_argument("--ema", action=argparse.BooleanOptionalAction, default=defaults.ema,
                        help="score and keep each epoch's moving average of the weights (over "
                        "about one epoch of steps) instead of its last weights (default: on)")
    parser.add_argument("--tta", choices=TTA_CHOICES, default=defaults.tta,
                        help="test-time augmentation of model.keras: auto (default) averages "
                        "over each image and its mirror when the cache's augmentation mirrors "
                        "images; flip always; none never")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last completed epoch")
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--list-layers", action="store_true",
                        help="print index, name and trainable flag of every backbone layer "
                        "(as --fine-tune-at/--unfreeze-last would set them) and exit")
    return add_verbose_flag(parser)


def _config(args):
    return FinetuneConfig(epochs=args.epochs, learning_rate=args.learning_rate,
                          fine_tune_at=args.fine_tune_at, unfreeze_last=args.unfreeze_last,
                          batch_size=args.batch_size, patience=args.patience,
                          distribute=args.distribute, train_fraction=args.train_fraction,
                          schedule=args.schedule, warmup_epochs=args.warmup_epochs,
                          head_learning_rate_scale=args.head_learning_rate_scale,
                          label_smoothing=args.label_smoothing, mixup=args.mixup,
                          ema=args.ema, tta=args.tta, seed=args.seed)


def list_layers(cache_dir, config):
    """Lines of `index  name  trainable` for the backbone of a cache's end-to-end model."""
    from pipeline.features import cache
    from pipeline.training.end_to_end import backbone_of, build_model, set_trainable

    model = build_model(cache.read_manifest(cache_dir))
    set_trainable(model, config)
    return [f"{i:4d}  {layer.name:40s} {layer.trainable}"
            for i, layer in enumerate(backbone_of(model).layers)]


def run(argv=None, callbacks=()):
    """Parses `argv` and fine-tunes; returns the report dict (or the layer lines)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    needed = ["cache"] if args.list_layers else ["cache", "head", "out"]
    missing = [f"--{name}" for name in needed if not getattr(args, name)]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    if args.list_layers:
        return list_layers(args.cache, _config(args))
    return run_finetune(args.cache, args.head, args.out, config=_config(args),
                        resume=args.resume, top_n=args.top_n, callbacks=callbacks)


def main(argv=None):
    configure_output(build_parser().parse_known_args(argv)[0].verbose)
    try:
        result = run(argv)
    except ValueError as err:
        sys.exit(f"error: {err}")
    if isinstance(result, list):
        print("\n".join(result))
        return
    print(f"kept {result['kept']}: {result['kept_reason']}")
    print(f"validation accuracy: head {result['head_vs_finetuned']['head_accuracy']:.4f} -> "
          f"model.keras {result['accuracy']:.4f}")
    print(os.path.join(build_parser().parse_args(argv).out, "index.html"))


if __name__ == "__main__":
    main()
