"""Predict job: `python -m jobs.predict --model M --data SRC --out OUT [Beam options]`.

Applies a trained model to new images on any Beam runner: a fine-tuned `model.keras`, a head
folder (its cache's backbone, then the head) or a `jobs.export` folder, with images prepared as
the model was validated (decoding, face crop, input size; mirror averaging is in the model).
`SRC` is a folder in any layout (searched recursively), a glob (`'gs://bucket/2026-12-*/*.jpg'`),
a `.txt`/`.csv` list of paths or URIs, or `tfds:NAME[:SPLIT]`. Writes `OUT/<run key>/`: one
Parquet file per shard, `predictions.csv`, `index.html` (counts per class, confidence, the
lowest-confidence images) and `manifest.json` last. Images already predicted by the same model
in an earlier output under `OUT` are copied, not run again. Arguments this parser does not know
go to Beam (`--runner DaskRunner --dask_client_address ...`, `--runner DataflowRunner ...`).
The last line printed is the output folder.
"""
import argparse
from argparse import RawDescriptionHelpFormatter

from jobs import add_verbose_flag, job_main
from pipeline.batch.runner import pipeline_options
from pipeline.prediction.job import PredictConfig, run_predict

EXAMPLE = """example (a fine-tuned model over a folder of new photos, then on Dask):
  python -m jobs.predict --model runs/finetune/model.keras --data new_photos/ --out predictions
  python -m jobs.predict --model runs/head --data photos.csv --out predictions \\
    --runner DaskRunner --dask_client_address tcp://127.0.0.1:8786
"""


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m jobs.predict",
                                     description=__doc__.split("\n")[0], epilog=EXAMPLE,
                                     formatter_class=RawDescriptionHelpFormatter)
    defaults = PredictConfig(model="", data="")
    parser.add_argument("--model", required=True,
                        help="model.keras from jobs.finetune, a head folder from "
                        "jobs.train_head, or a folder from jobs.export")
    parser.add_argument("--data", required=True,
                        help="folder (any layout), glob, .txt/.csv list, or tfds:NAME[:SPLIT]")
    parser.add_argument("--out", default=defaults.out,
                        help=f"output root (default: {defaults.out})")
    parser.add_argument("--top-k", type=int, default=defaults.top_k,
                        help=f"labels kept per image (default: {defaults.top_k})")
    parser.add_argument("--with-embeddings", action="store_true",
                        help="also write each image's pooled embedding")
    parser.add_argument("--labels-from-folders", action=argparse.BooleanOptionalAction,
                        default=None, help="record the first folder level as the true label "
                        "(default: where every folder there is one of the model's classes)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--num-shards", type=int, default=defaults.num_shards,
                        help="0: one per 1,000 images")
    return add_verbose_flag(parser)


def run(argv=None, test_pipeline=None, show_progress=False):
    """Parses `argv` and predicts; returns the `PredictResult`."""
    args, beam_args = build_parser().parse_known_args(argv)
    config = PredictConfig(model=args.model, data=args.data, out=args.out, top_k=args.top_k,
                           with_embeddings=args.with_embeddings,
                           labels_from_folders=args.labels_from_folders,
                           batch_size=args.batch_size, num_shards=args.num_shards)
    return run_predict(config, pipeline_options=pipeline_options(beam_args),
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


def _report(result):
    print(summary(result))
    print(result.out_dir)


main = job_main(build_parser, run, _report)


if __name__ == "__main__":
    main()
