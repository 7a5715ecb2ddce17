"""Experiment job: `python -m jobs.experiment --cache DIR --out DIR [--quick]`.

Runs the classic transfer-learning grid on one feature cache: feature extraction on 1 %, 10 % and
100 % of the training images, fine-tuning on 10 % and 100 % (each from the head of the same
fraction), each in its own folder under `--out`, then prints and writes the comparison table
(`comparison.csv`, `comparison.md`, `comparison.png`). `--quick` runs the same grid with tiny
settings. The last line printed is the path of `comparison.md`.
"""
import dataclasses
import os

from jobs.cli import Job, add_config_flags, cache_folder, output_folder
from pipeline.fields import field

EXAMPLE = """example (four models plus feature extraction on 100 %, tiny settings):
  python -m jobs.experiment --cache cache/<key> --out runs/experiment --quick
"""


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Which cache the grid runs on, where it writes, and how big it is."""

    cache: str = cache_folder()
    out: str = output_folder()
    quick: bool = field(False, negatable=False, help="tiny settings (for CI)")
    finetune_epochs: int | None = field(None, help="fine-tune epochs (default: the fine-tune "
                                        "job's, or the quick grid's)")


def _run(args, *, show_progress=False):
    from pipeline.training.experiment import (QUICK_FINETUNE, QUICK_HEAD,  # noqa: PLC0415
                                              run_experiment)  # (TensorFlow, after the output)
    from pipeline.training.config import FinetuneConfig  # noqa: PLC0415
    from pipeline.training.heads import HeadConfig  # noqa: PLC0415

    head, tune = (QUICK_HEAD, QUICK_FINETUNE) if args.quick else (HeadConfig(), FinetuneConfig())
    if args.finetune_epochs is not None:
        tune = dataclasses.replace(tune, epochs=args.finetune_epochs)
    return run_experiment(args.cache, args.out, head_config=head, finetune_config=tune)


def _report(rows, args):
    from pipeline.training.experiment import markdown  # noqa: PLC0415

    print(markdown(rows))
    print(os.path.join(args.out, "comparison.md"))


JOB = Job("experiment", __doc__, EXAMPLE, flags=lambda p: add_config_flags(p, Experiment),
          run=_run, report=_report)
main, run, build_parser = JOB.main, JOB.run_argv, JOB.build_parser


if __name__ == "__main__":
    main()
