"""Quickstart: `python -m jobs.quickstart --weights-dir DIR` runs the whole pipeline offline.

Finds real ImageNet weights for the default backbone (MobileNetV2 alpha 0.5) in `--weights-dir`
or Keras's cache (`$KERAS_HOME/models`) first, and stops in one line if they are nowhere (random
weights only with `--weights none`, on purpose). Then draws a small two-class folder of synthetic
faces (`samples/faces/`), and: embed -> dense head on the cached features -> fine-tune (one short
epoch) -> evaluate into `reports/`. Prints each step's result against the majority baseline; the
last line printed is the path of the evaluation report's `index.html`.
"""
import argparse
import os
import sys
from argparse import RawDescriptionHelpFormatter

from jobs import add_verbose_flag, configure_output, embed, evaluate, finetune, train_head
from pipeline.data.sample import write_sample
from pipeline.features.backbones import build_backbone
from pipeline.features.config import EmbedConfig

EXAMPLE = """example (offline, with the Keras weight files of ../shared/weights):
  python -m jobs.quickstart --weights-dir ../shared/weights
  (or put mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5 into
  ~/.keras/models/ and run python -m jobs.quickstart)
"""


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m jobs.quickstart",
                                     description=__doc__.split("\n")[0], epilog=EXAMPLE,
                                     formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("--weights-dir", default=None, metavar="DIR",
                        help="folder of Keras weight files (searched before Keras's cache)")
    parser.add_argument("--weights", default="imagenet",
                        help="imagenet (default) or none: random weights, a smoke run only")
    parser.add_argument("--sample-dir", default="samples/faces")
    parser.add_argument("--per-class", type=int, default=100, help="faces per class")
    parser.add_argument("--image-size", type=int, default=96, help="side of the faces and "
                        "the backbone input (default: 96)")
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--runs-dir", default="runs/quickstart")
    parser.add_argument("--reports-dir", default="reports")
    return add_verbose_flag(parser)


def run(argv=None):
    """Runs every step; returns `(embed result, head report, fine-tune report, evaluation)`.

    Raises:
        BackboneError: no weights file for the backbone (before anything is written).
    """
    args, beam_args = build_parser().parse_known_args(argv)
    _, found = build_backbone(EmbedConfig.backbone, alpha=EmbedConfig.alpha,
                              image_size=args.image_size,
                              weights=None if args.weights == "none" else args.weights,
                              weights_dir=args.weights_dir)  # refuses here, before any work
    backbone = ["--backbone", EmbedConfig.backbone, "--alpha", str(EmbedConfig.alpha),
                "--image-size", str(args.image_size), "--weights", found or "none"]
    if args.weights_dir:
        backbone += ["--weights-dir", args.weights_dir]
    write_sample(args.sample_dir, per_class=args.per_class, size=args.image_size)
    cached = embed.run(["--data", args.sample_dir, *backbone, "--augment-copies", "2",
                        "--cache-dir", args.cache_dir, *beam_args])
    print(embed.summary(cached))
    head_dir, tuned_dir = (os.path.join(args.runs_dir, name) for name in ("head", "finetune"))
    (head,) = train_head.run(["--cache", cached.cache_dir, "--out", head_dir, "--quiet"])
    print(f"head: validation accuracy {head['accuracy']:.4f} (majority baseline "
          f"{head['majority_baseline']:.4f}; {head_dir}/index.html)")
    tuned = finetune.run(["--cache", cached.cache_dir, "--head", head_dir, "--out", tuned_dir,
                          "--epochs", str(args.finetune_epochs)])
    kept = ("the warm-started head (no fine-tune epoch beat it)" if tuned["kept"] == "warm_start"
            else f"fine-tune epoch {tuned['kept_epoch']}")
    print(f"fine-tuned model: validation accuracy {tuned['accuracy']:.4f}, kept {kept} "
          f"({tuned_dir}/index.html)")
    report, _ = evaluate.run(["--model", os.path.join(tuned_dir, "model.keras"), "--data",
                              f"{cached.cache_dir}:val", "--reports-dir", args.reports_dir,
                              *beam_args], show_progress=True)
    return cached, head, tuned, report


def main(argv=None):
    configure_output(build_parser().parse_known_args(argv)[0].verbose)
    try:
        cached, *_, report = run(argv)
    except ValueError as err:
        sys.exit(f"error: {err}")
    if cached.manifest["weights_used"] is None:
        print("NOTE: random backbone weights (--weights none): the accuracies above are a smoke "
              "run of every step, near chance")
    print(f"evaluation: accuracy {report['accuracy']:.4f} "
          f"(runs listed in {os.path.dirname(report['run_dir'])}/index.html)")
    print(os.path.join(report["run_dir"], "index.html"))


if __name__ == "__main__":
    main()
