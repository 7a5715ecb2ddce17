"""Quickstart: `python -m jobs.quickstart --weights-dir DIR` runs the whole pipeline offline.

Finds real ImageNet weights for the default backbone (MobileNetV2 alpha 0.5) in `--weights-dir`
or Keras's cache (`$KERAS_HOME/models`) first, and stops in one line if they are nowhere (random
weights only with `--weights none`, on purpose). Then draws a small two-class folder of synthetic
faces (`samples/faces/`), and: embed -> dense head on the cached features -> fine-tune (one short
epoch) -> evaluate into `reports/`. Prints each step's result against the majority baseline; the
last line printed is the path of the evaluation report's `index.html`.
"""
import dataclasses
import os

from jobs import embed, evaluate, finetune, train_head
from jobs.cli import Job, add_config_flags
from pipeline.data.sample import write_sample
from pipeline.features.config import EmbedConfig
from pipeline.fields import field

EXAMPLE = """example (offline, with the Keras weight files of ../shared/weights):
  python -m jobs.quickstart --weights-dir ../shared/weights
  (or put mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5 into
  ~/.keras/models/ and run python -m jobs.quickstart)
"""


@dataclasses.dataclass(frozen=True)
class Quickstart:
    """Where the quickstart finds weights, what it draws and where it writes."""

    weights_dir: str | None = field(None, metavar="DIR", help="folder of Keras weight files "
                                    "(searched before Keras's cache)")
    weights: str = field("imagenet", help="imagenet, or none: random weights, a smoke run only")
    sample_dir: str = field("samples/faces", metavar="DIR", help="where the faces are drawn")
    per_class: int = field(100, help="faces per class")
    image_size: int = field(96, help="side of the faces and the backbone input")
    finetune_epochs: int = field(1, help="fine-tune epochs")
    cache_dir: str = field("cache", metavar="DIR", help="cache root")
    runs_dir: str = field("runs/quickstart", metavar="DIR", help="folder of the head and the "
                          "fine-tuned model")
    reports_dir: str = field("reports", metavar="DIR", help="folder of the evaluation runs")


def _run(args, *, show_progress=False):
    """Runs every step; returns `(embed result, head report, fine-tune report, evaluation)`.

    Raises:
        BackboneError: no weights file for the backbone (before anything is written).
    """
    from pipeline.features.backbones import build_backbone  # noqa: PLC0415  (TensorFlow, after)

    default = EmbedConfig(data=args.sample_dir)
    _, found = build_backbone(default.backbone, alpha=default.alpha, image_size=args.image_size,
                              weights=None if args.weights == "none" else args.weights,
                              weights_dir=args.weights_dir)  # refuses here, before any work
    backbone = ["--backbone", default.backbone, "--alpha", str(default.alpha),
                "--image-size", str(args.image_size), "--weights", found or "none"]
    if args.weights_dir:
        backbone += ["--weights-dir", args.weights_dir]
    write_sample(args.sample_dir, per_class=args.per_class, size=args.image_size)
    cached = embed.run(["--data", args.sample_dir, *backbone, "--augment-copies", "2",
                        "--cache-dir", args.cache_dir, *args.beam_args])
    print(embed.summary(cached))
    head_dir, tuned_dir = (os.path.join(args.runs_dir, name) for name in ("head", "finetune"))
    (head,) = train_head.run(["--cache", cached.cache_dir, "--out", head_dir])
    print(f"head: validation accuracy {head['accuracy']:.4f} (majority baseline "
          f"{head['majority_baseline']:.4f}; {head_dir}/index.html)")
    tuned = finetune.run(["--cache", cached.cache_dir, "--head-dir", head_dir, "--out",
                          tuned_dir, "--epochs", str(args.finetune_epochs)])
    print(f"fine-tuned model: validation accuracy {tuned['accuracy']:.4f}, kept "
          f"{tuned['kept_model']} ({tuned_dir}/index.html)")
    report, _ = evaluate.run(["--model", os.path.join(tuned_dir, "model.keras"), "--data",
                              f"{cached.cache_dir}:val", "--reports-dir", args.reports_dir,
                              *args.beam_args], show_progress=show_progress)
    return cached, head, tuned, report


def _report(result, args):
    cached, *_, report = result
    if cached.manifest["weights_used"] is None:
        print("NOTE: random backbone weights (--weights none): the accuracies above are a smoke "
              "run of every step, near chance")
    print(f"evaluation: accuracy {report['accuracy']:.4f} "
          f"(runs listed in {os.path.dirname(report['run_dir'])}/index.html)")
    print(os.path.join(report["run_dir"], "index.html"))


JOB = Job("quickstart", __doc__, EXAMPLE, flags=lambda p: add_config_flags(p, Quickstart),
          run=_run, report=_report, beam=True)
main, run, build_parser = JOB.main, JOB.run_argv, JOB.build_parser


if __name__ == "__main__":
    main()
