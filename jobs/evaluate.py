"""Evaluate job: `python -m jobs.evaluate --model PATH --data DIR|tfds:NAME[:SPLIT]
--reports-dir DIR [--fail-under X]`.

Scores a fine-tuned `model.keras` (or a head folder, with its cache's backbone) on a class folder
(every image), a TFDS split or a cache folder's split (`cache/<key>:val`), writes a time-stamped
run with the full report under `--reports-dir`, and updates `runs.csv`, `trend.png` and
`index.html` there. With `--fail-under X` it exits with status 1, after writing everything, when
accuracy is below X, so that a scheduler can alert; a drop of more than
`--regression-threshold` (default 0.01) since the previous run on the same data is flagged on the
index page, in `runs.csv` and printed. The images are scored by the predict job's Beam pass:
arguments this parser does not know go to Beam (`--runner DaskRunner --dask_client_address ...`,
`--runner DataflowRunner ...`). The last line printed is the run's `index.html`.
"""
import argparse
import os
import sys
from argparse import RawDescriptionHelpFormatter

from jobs import add_verbose_flag, configure_output
from pipeline.batch.runner import pipeline_options
from pipeline.evaluation.evaluate import evaluate

EXAMPLE = """example (a weekly run that fails below 0.85 accuracy):
  python -m jobs.evaluate --model runs/finetune/model.keras --data new_images/ \\
    --reports-dir reports --fail-under 0.85
"""


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m jobs.evaluate",
                                     description=__doc__.split("\n")[0],
                                     epilog=EXAMPLE, formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True,
                        help="model.keras from jobs.finetune, a head folder, or a folder from "
                        "jobs.export")
    parser.add_argument("--data", required=True,
                        help="class folder, tfds:NAME[:SPLIT], or a cache folder[:SPLIT]")
    parser.add_argument("--reports-dir", default="reports")
    parser.add_argument("--fail-under", type=float, default=None,
                        help="exit 1 when accuracy is below this")
    parser.add_argument("--regression-threshold", type=float, default=0.01,
                        help="flag a regression when accuracy, macro-F1, ROC-AUC or top-5 "
                             "accuracy drops by more than this since the previous run on the "
                             "same data (default 0.01)")
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--predictions-dir", default=None, metavar="DIR",
                        help="where the pass writes its rows, reused by later runs (local or "
                        "gs://; default: REPORTS_DIR/predictions)")
    return add_verbose_flag(parser)


def run(argv=None, show_progress=False):
    """Parses `argv` and evaluates; returns `(report, exit status)`."""
    args, beam_args = build_parser().parse_known_args(argv)
    report = evaluate(args.model, args.data, args.reports_dir, top_n=args.top_n,
                      regression_threshold=args.regression_threshold,
                      fail_under=args.fail_under, pipeline_options=pipeline_options(beam_args),
                      show_progress=show_progress, predictions_dir=args.predictions_dir)
    failed = args.fail_under is not None and report["accuracy"] < args.fail_under
    return report, (1 if failed else 0)


def main(argv=None):
    configure_output(build_parser().parse_known_args(argv)[0].verbose)
    try:
        report, status = run(argv, show_progress=True)
    except ValueError as err:
        sys.exit(f"error: {err}")
    print(f"accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f} on "
          f"{report['num_examples']} images ({report['num_skipped']} skipped; embedded "
          f"{report['embedded']}, reused {report['reused']})")
    for reason in report["comparison"]["reasons"]:
        print(f"REGRESSION: {reason}")
    if status:
        print(f"FAILED: accuracy {report['accuracy']:.4f} is below --fail-under")
    print(os.path.join(report["run_dir"], "index.html"))
    sys.exit(status)


if __name__ == "__main__":
    main()
