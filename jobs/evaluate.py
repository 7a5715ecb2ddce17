"""Evaluate job: `python -m jobs.evaluate --model PATH --data DIR|tfds:NAME[:SPLIT]
--reports-dir DIR [--fail-under X]`.

Scores a fine-tuned `model.keras` (or a head folder, with its cache's backbone) on a class folder
(every image), a TFDS split or a cache folder's split (`cache/<key>:val`), writes a time-stamped
run with the full report under `--reports-dir`, and updates `runs.csv`, `trend.png` and
`index.html` there. With `--fail-under X` it exits with status 1, after writing everything, when
accuracy is below X, so that a scheduler can alert; a drop of more than
`--regression-threshold` (default 0.01) since the previous run of the same model on the same
data is flagged on the index page, in `runs.csv` and printed. The images are scored by the
predict job's Beam pass: Beam's own options go to Beam (`--runner DaskRunner
--dask_client_address ...`, `--runner DataflowRunner ...`); any other argument is refused in one
line. The last line printed is the run's `index.html`.
"""
import os

from jobs.cli import Job, add_config_flags, config_from
from pipeline.evaluation.config import EvaluateConfig

EXAMPLE = """example (a weekly run that fails below 0.85 accuracy):
  python -m jobs.evaluate --model runs/finetune/model.keras --data new_images/ \\
    --reports-dir reports --fail-under 0.85
"""


def _run(args, *, show_progress=False):
    from pipeline.batch.options import pipeline_options  # noqa: PLC0415  (TensorFlow, Beam:
    from pipeline.evaluation.evaluate import evaluate  # noqa: PLC0415  after the output is set)

    from pipeline.evaluation.gate import parse_requirement  # noqa: PLC0415

    config = config_from(EvaluateConfig, args)
    requirements = [parse_requirement(text) for text in config.require]
    report = evaluate(config.model, config.data, config.reports_dir, top_n=config.top_n,
                      regression_threshold=config.regression_threshold,
                      fail_under=config.fail_under, predictions_dir=config.predictions_dir,
                      follow_links=config.follow_links, baseline=config.baseline,
                      requirements=requirements, bless=config.bless,
                      slice_by=config.slice_by, slices_csv=config.slices,
                      pipeline_options=pipeline_options(args.beam_args),
                      show_progress=show_progress)
    failed = ((config.fail_under is not None and report["accuracy"] < config.fail_under)
              or not report["requirements_passed"] or (config.bless and not report["blessed"]))
    return report, (1 if failed else 0)


def _report(result, args):
    report, status = result
    print(f"accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f} on "
          f"{report['num_examples']} images ({report['num_skipped']} skipped; embedded "
          f"{report['embedded']}, reused {report['reused']})")
    for reason in report["comparison"]["reasons"]:
        print(f"REGRESSION: {reason}")
    against = report["baseline_comparison"]
    if against is not None:
        accuracy = against["metrics"]["accuracy"]
        print(f"against {report['baseline']}: {against['verdict']} (accuracy "
              f"{accuracy['difference']:+.4f}, 95 % interval [{accuracy['low']:+.4f}, "
              f"{accuracy['high']:+.4f}]; {against['fixed']} fixed, {against['broken']} newly "
              f"broken, McNemar p = {against['mcnemar_p']:.3g})")
    for empty in report["empty_slices"]:
        print(f"note: no slice by {empty['dimension']}: {empty['reason']}")
    for check in report["requirements"]:
        if not check["passed"]:
            value = "not known" if check["value"] is None else f"{check['value']:.4f}"
            where = f" on the slice {check['slice']}" if check["slice"] else ""
            print(f"FAILED: {check['requirement']}{where} ({check['what']} is {value})")
    if report["blessed"]:
        print(f"blessed: {report['blessed']['model']}")
    fail_under = args.fail_under
    if fail_under is not None and report["accuracy"] < fail_under:
        print(f"FAILED: accuracy {report['accuracy']:.4f} is below --fail-under")
    print(os.path.join(report["run_dir"], "index.html"))
    return status


JOB = Job("evaluate", __doc__, EXAMPLE, flags=lambda p: add_config_flags(p, EvaluateConfig),
          run=_run, report=_report, beam=True)
main, run, build_parser = JOB.main, JOB.run_argv, JOB.build_parser


if __name__ == "__main__":
    main()
