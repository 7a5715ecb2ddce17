"""Fine-tune job: `python -m jobs.finetune --cache DIR --head-dir DIR --out DIR [--epochs E]`.

Builds the end-to-end model of a cache (same images, split, backbone, size and augmentation),
warm-starts its dense layer from the head trained by `jobs.train_head`, unfreezes the backbone
(all of it by default; `--fine-tune-at N` or `--unfreeze-last N` for less; BatchNorm stays frozen
in inference mode) and trains with Adam on a fixed schedule, with per-epoch checkpoints and logs.
`model.keras` is the ensemble of the last epoch and the head (their weight fitted on validation,
shrunk toward equal weights; the head alone where the ensemble is worse beyond doubt), or with
`--keep best` the best candidate by validation with early stopping; the job says in one line what
it kept and why (also in `report.json`: `kept`, `kept_epoch`, `kept_reason`, `ensemble`). Writes
`model.keras`, `report.json` (top-level `accuracy`) and the full report. `--resume` continues an interrupted run. The last
line printed is the path of the report's `index.html`.
"""
import dataclasses
import os

from jobs.cli import Job, add_config_flags, cache_folder, config_from, output_folder
from pipeline.fields import field
from pipeline.training.config import FinetuneConfig

EXAMPLE = """example (warm-started from a head trained on the same cache):
  python -m jobs.finetune --cache cache/<key> --head-dir runs/head --out runs/finetune --epochs 10
  python -m jobs.finetune --cache cache/<key> --list-layers --fine-tune-at 60
"""


@dataclasses.dataclass(frozen=True)
class FinetuneRun:
    """What the job fine-tunes from and writes, besides the `FinetuneConfig`."""

    cache: str = cache_folder()
    head_dir: str | None = field(None, aliases=("--head",), metavar="DIR",
                                 help="dense head folder written by jobs.train_head")
    out: str | None = output_folder(None)
    resume: bool = field(False, negatable=False,
                         help="continue an interrupted run from its last completed epoch")
    top_n: int = field(50, help="rows of the most-wrong report")
    list_layers: bool = field(False, negatable=False,
                              help="print index, name and trainable flag of every backbone layer "
                              "(as --fine-tune-at/--unfreeze-last would set them) and exit")


def _flags(parser):
    add_config_flags(parser, FinetuneRun)
    add_config_flags(parser, FinetuneConfig)


def list_layers(cache_dir, config):
    """Lines of `index  name  trainable` for the backbone of a cache's end-to-end model."""
    from pipeline.features import cache  # noqa: PLC0415  (TensorFlow: after the output is set)
    from pipeline.training.end_to_end import backbone_of, build_model, set_trainable  # noqa

    model = build_model(cache.read_manifest(cache_dir))
    set_trainable(model, config)
    return [f"{i:4d}  {layer.name:40s} {layer.trainable}"
            for i, layer in enumerate(backbone_of(model).layers)]


def _run(args, *, callbacks=(), show_progress=False):
    from pipeline.training.finetune import run_finetune  # noqa: PLC0415  (TensorFlow, after)

    config = config_from(FinetuneConfig, args)
    if args.list_layers:
        return list_layers(args.cache, config)
    missing = [flag for flag, value in (("--head-dir", args.head_dir), ("--out", args.out))
               if not value]
    if missing:
        raise ValueError(f"{' and '.join(missing)}: required (unless --list-layers)")
    return run_finetune(args.cache, args.head_dir, args.out, config=config, resume=args.resume,
                        top_n=args.top_n, callbacks=callbacks)


def _report(result, args):
    if args.list_layers:
        print("\n".join(result))
        return
    print(f"kept {result['kept']}: {result['kept_reason']}")
    print(f"validation accuracy: head {result['head_vs_finetuned']['head_accuracy']:.4f} -> "
          f"model.keras {result['accuracy']:.4f}")
    print(os.path.join(args.out, "index.html"))


JOB = Job("finetune", __doc__, EXAMPLE, flags=_flags, run=_run, report=_report)
main, run, build_parser = JOB.main, JOB.run_argv, JOB.build_parser


if __name__ == "__main__":
    main()
