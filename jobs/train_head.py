"""Head trainer: `python -m jobs.train_head --cache DIR --head dense|logistic --out DIR`.

Fits a classification head on a feature cache written by `jobs.embed` (no backbone pass), and
writes the head, its history and the full report (`report.json`, `index.html`, `most_wrong.csv`,
PNG plots) to `--out`. `--train-fraction 0.01 0.1 1.0` trains one head per fraction and prints a
comparison table; `--folds K` runs stratified k-fold evaluation over all the cache's images.
The last line printed is the path of the report's `index.html`.
"""
import argparse
import os
import sys
from argparse import RawDescriptionHelpFormatter

from jobs import add_verbose_flag, configure_output
from pipeline.training.head_training import comparison_markdown, train_heads_on_cache
from pipeline.training.heads import HEADS, HeadConfig
from pipeline.training.kfold import kfold_on_cache

EXAMPLE = """example (a dense head on a cache, then 10-fold evaluation of the same head):
  python -m jobs.train_head --cache cache/<key> --out runs/head
  python -m jobs.train_head --cache cache/<key> --out runs/kfold10 --folds 10
  (<key>: the folder that python -m jobs.embed printed last)
"""


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m jobs.train_head",
                                     description=__doc__.split("\n")[0],
                                     epilog=EXAMPLE, formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("--cache", required=True, help="cache folder, e.g. cache/<key>")
    parser.add_argument("--head", default="dense", choices=HEADS)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--train-fraction", type=float, nargs="+", default=[1.0])
    parser.add_argument("--folds", type=int, default=None,
                        help="stratified k-fold evaluation over all images of the cache "
                        "instead of one train/validation run")
    defaults = HeadConfig()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--dropout", type=float, default=defaults.dropout)
    parser.add_argument("--patience", type=int, default=defaults.patience)
    parser.add_argument("--class-weight", action="store_true",
                        help="weight classes by inverse frequency (imbalanced data)")
    parser.add_argument("--l2", type=float, default=defaults.l2,
                        help="inverse regularisation C of the logistic head")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay,
                        help="decoupled weight decay (AdamW) of the dense head")
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    parser.add_argument("--mixup", type=float, default=defaults.mixup,
                        help="alpha of mixup on embeddings (0: off)")
    parser.add_argument("--standardize", action=argparse.BooleanOptionalAction,
                        default=defaults.standardize,
                        help="train on standardised embeddings (folded into the saved head)")
    parser.add_argument("--ensemble", type=int, default=defaults.ensemble,
                        help="average the weights of this many dense heads of seeds seed, "
                        "seed+1, ... (one head, their logit ensemble)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--top-n", type=int, default=50, help="rows of the most-wrong report")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    return add_verbose_flag(parser)


def run(argv=None):
    """Parses `argv` and trains; returns the list of report dicts (one per fraction)."""
    return _train(build_parser().parse_args(argv))


def _train(args):
    config = HeadConfig(head=args.head, epochs=args.epochs, batch_size=args.batch_size,
                        learning_rate=args.learning_rate, dropout=args.dropout,
                        patience=args.patience, class_weight=args.class_weight, l2=args.l2,
                        weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                        mixup=args.mixup, standardize=args.standardize,
                        ensemble=args.ensemble, seed=args.seed)
    if args.folds is not None:
        return [kfold_on_cache(args.cache, args.out, folds=args.folds, config=config,
                               top_n=args.top_n, verbose=0 if args.quiet else 2)]
    return train_heads_on_cache(args.cache, args.out, config=config,
                                fractions=tuple(args.train_fraction), top_n=args.top_n,
                                verbose=0 if args.quiet else 2)


def main(argv=None):
    args = build_parser().parse_args(argv)
    configure_output(args.verbose)
    try:
        results = _train(args)
    except ValueError as err:
        sys.exit(f"error: {err}")
    if args.folds is not None:
        cv = results[0]["cv"]
        print("\n".join(f"{m}: {v['mean']:.4f} +/- {v['std']:.4f}" for m, v in cv.items()))
    else:
        print(comparison_markdown(results))
    print(os.path.join(args.out, "index.html"))


if __name__ == "__main__":
    main()
