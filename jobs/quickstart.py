"""Quickstart: `python -m jobs.quickstart` runs the whole pipeline offline on a generated sample.

Draws a small two-class folder of synthetic faces (`samples/faces/`), then:
embed (a small MobileNetV2; ImageNet weights when they can be downloaded, else random weights,
said loudly) -> dense head on the cached features -> fine-tune (one short epoch) -> evaluate into
`reports/`. Prints what the cache holds and each step's result; the last line printed is the path
of the evaluation report's `index.html`.
"""
import argparse
import logging
import os

from jobs import embed, evaluate, finetune, train_head
from pipeline.sample import write_sample


def run(argv=None):
    """Runs every step; returns `(embed result, evaluation report)`."""
    parser = argparse.ArgumentParser(prog="python -m jobs.quickstart", description=__doc__)
    parser.add_argument("--sample-dir", default="samples/faces")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--runs-dir", default="runs/quickstart")
    parser.add_argument("--reports-dir", default="reports")
    args, beam_args = parser.parse_known_args(argv)
    write_sample(args.sample_dir, per_class=args.per_class, size=96)
    cached = embed.run(["--data", args.sample_dir, "--backbone", "mobilenet_v2", "--alpha",
                        "0.35", "--image-size", "96", "--weights", "auto", "--augment-copies",
                        "2", "--cache-dir", args.cache_dir, *beam_args])
    print(embed.summary(cached))
    if cached.manifest["weights_used"] is None:
        print("NOTE: random backbone weights (no ImageNet download here): the embeddings carry "
              "almost no signal, so expect accuracies near chance below; with network access, "
              "or --weights PATH on jobs.embed, the same steps learn")
    head_dir, tuned_dir = (os.path.join(args.runs_dir, name) for name in ("head", "finetune"))
    (head,) = train_head.run(["--cache", cached.cache_dir, "--out", head_dir, "--quiet"])
    print(f"head: validation accuracy {head['accuracy']:.4f} ({head_dir}/index.html)")
    tuned = finetune.run(["--cache", cached.cache_dir, "--head", head_dir, "--out", tuned_dir,
                          "--epochs", "1"])
    print(f"fine-tuned: validation accuracy {tuned['accuracy']:.4f} ({tuned_dir}/index.html)")
    report, _ = evaluate.run(["--model", os.path.join(tuned_dir, "model.keras"), "--data",
                              f"{cached.cache_dir}:val", "--reports-dir", args.reports_dir])
    return cached, report


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    _, report = run(argv)
    print(f"evaluation: accuracy {report['accuracy']:.4f} "
          f"(runs listed in {os.path.dirname(report['run_dir'])}/index.html)")
    print(os.path.join(report["run_dir"], "index.html"))


if __name__ == "__main__":
    main()
