"""Predict job: `python -m jobs.predict --model M --data SRC --out OUT [Beam options]`.

Applies a trained model to new images on any Beam runner: a fine-tuned `model.keras`, a head
folder (its cache's backbone, then the head) or a `jobs.export` folder, with images prepared as
the model was validated (decoding, face crop, input size; mirror averaging is in the model).
`SRC` is a folder in any layout (searched recursively), a glob (`'gs://bucket/2026-12-*/*.jpg'`),
a `.txt`/`.csv` list of paths or URIs, or `tfds:NAME[:SPLIT]`. Writes `OUT/<run key>/`: one
Parquet file per shard, `predictions.csv`, `index.html` (counts per class, confidence, the
lowest-confidence images) and `manifest.json` last. Images already predicted by the same model
in an earlier output under `OUT` are copied, not run again. Beam's own options go to Beam
(`--runner DaskRunner --dask_client_address ...`, `--runner DataflowRunner ...`); any other
argument is refused in one line.
The last line printed is the output folder.
"""
from jobs.cli import Job, add_config_flags, config_from
from pipeline.prediction.config import PredictConfig

EXAMPLE = """example (a fine-tuned model over a folder of new photos, then on Dask):
  python -m jobs.predict --model runs/finetune/model.keras --data new_photos/ --out predictions
  python -m jobs.predict --model runs/head --data photos.csv --out predictions \\
    --runner DaskRunner --dask_client_address tcp://127.0.0.1:8786
"""


def _run(args, *, test_pipeline=None, show_progress=False):
    from pipeline.batch.options import pipeline_options  # noqa: PLC0415  (TensorFlow, Beam:
    from pipeline.evaluation.blessing import require_blessed  # noqa: PLC0415  after the output)
    from pipeline.prediction.job import run_predict  # noqa: PLC0415

    config = config_from(PredictConfig, args)
    if config.require_blessed:
        require_blessed(config.require_blessed, config.model)
    return run_predict(config,
                       pipeline_options=pipeline_options(args.beam_args),
                       test_pipeline=test_pipeline, show_progress=show_progress)


def summary(result):
    """A few readable lines about a prediction run."""
    manifest = result.manifest
    counts = manifest["counts"]
    lines = [f"{'reused' if result.reused else 'wrote'} predictions {manifest['run_key']}: "
             f"{counts['rows']} images ({result.predicted} predicted, {result.reused_images} "
             f"reused from an earlier run), {counts['skipped']} skipped",
             f"  model {manifest['model']['kind']} {manifest['model']['path']}, "
             f"{manifest['model']['preparation']['image_size']} px"
             + (", face crop" if manifest["model"]["preparation"]["face_crop"] else "")]
    ranked = sorted(manifest["per_class"].items(), key=lambda item: -item[1])
    lines.append("  predicted: " + ", ".join(f"{name} {n}" for name, n in ranked[:10])
                 + (f" (+{len(ranked) - 10} classes)" if len(ranked) > 10 else ""))
    lines += [f"    {s['path'] or s['id']}: {s['reason']}" for s in manifest["skipped"][:20]]
    return "\n".join(lines)


def _report(result, args):
    print(summary(result))
    print(result.out_dir)


JOB = Job("predict", __doc__, EXAMPLE, flags=lambda p: add_config_flags(p, PredictConfig),
          run=_run, report=_report, beam=True)
main, run, build_parser = JOB.main, JOB.run_argv, JOB.build_parser


if __name__ == "__main__":
    main()
