"""Experiment job: `python -m jobs.experiment --cache DIR --out DIR [--quick]`.

Runs the seeds' serial experiments on one feature cache: feature extraction on 1 %, 10 % and
100 % of the training images, fine-tuning on 10 % and 100 % (each from the head of the same
fraction), each in its own folder under `--out`, then prints and writes the comparison table
(`comparison.csv`, `comparison.md`, `comparison.png`). `--quick` runs the same grid with tiny
settings. The last line printed is the path of `comparison.md`.
"""
import argparse
import dataclasses
import os
import sys
from argparse import RawDescriptionHelpFormatter

from jobs import add_verbose_flag, configure_output
from pipeline.training.experiment import QUICK_FINETUNE, QUICK_HEAD, markdown, run_experiment
from pipeline.training.finetune import FinetuneConfig
from pipeline.training.heads import HeadConfig

EXAMPLE = """example (the seeds' four models plus feature extraction on 100 %, tiny settings):
  python -m jobs.experiment --cache cache/<key> --out runs/experiment --quick
"""


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m jobs.experiment",
                                     description=__doc__.split("\n")[0],
                                     epilog=EXAMPLE, formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="tiny settings (for CI)")
    parser.add_argument("--finetune-epochs", type=int, default=None)
    return add_verbose_flag(parser)


def run(argv=None):
    """Parses `argv` and runs the grid; returns the comparison rows."""
    args = build_parser().parse_args(argv)
    head, tune = (QUICK_HEAD, QUICK_FINETUNE) if args.quick else (HeadConfig(), FinetuneConfig())
    if args.finetune_epochs is not None:
        tune = dataclasses.replace(tune, epochs=args.finetune_epochs)
    return run_experiment(args.cache, args.out, head_config=head, finetune_config=tune)


def main(argv=None):
    configure_output(build_parser().parse_known_args(argv)[0].verbose)
    try:
        rows = run(argv)
    except ValueError as err:
        sys.exit(f"error: {err}")
    print(markdown(rows))
    print(os.path.join(build_parser().parse_args(argv).out, "comparison.md"))


if __name__ == "__main__":
    main()
