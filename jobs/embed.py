"""Embed job: `python -m jobs.embed --data DIR|tfds:NAME --backbone NAME ... [Beam options]`.

Runs a frozen backbone over every image (plus K augmented copies of each training image) and
writes the feature cache `<cache-dir>/<key>/`. Arguments this parser does not know go to Beam's
`PipelineOptions` (`--runner`, `--project`, `--region`, `--temp_location`, `--setup_file`, ...).
The last line printed is the cache directory.
"""
import argparse
import logging
import sys

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.augment import parse_augment
from pipeline.backbones import BACKBONES
from pipeline.config import EmbedConfig
from pipeline.embed import run_embed

#: Local default: Beam's Python DirectRunner on both cores (never the Prism download).
DEFAULT_RUNNER_ARGS = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                       "--direct_num_workers=2"]


def _weights(value):
    return None if value.lower() == "none" else value


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m jobs.embed", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="class-folder root, or tfds:NAME")
    parser.add_argument("--backbone", default="mobilenet_v2", choices=sorted(BACKBONES),
                        metavar="NAME", help="backbone name (default: mobilenet_v2); one of "
                        + ", ".join(sorted(BACKBONES)))
    parser.add_argument("--alpha", type=float, default=None, help="width multiplier")
    parser.add_argument("--weights", type=_weights, default="imagenet",
                        help="imagenet | auto | none | PATH (default: imagenet)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input side in pixels (default: the backbone's own)")
    parser.add_argument("--augment", type=parse_augment, default="default",
                        help='"default" (flip, rotation 0.1, zoom 0.1, contrast 0.1), "none", or '
                        'ops such as "flip=horizontal,rotation=0.2,brightness=0.1"')
    parser.add_argument("--augment-copies", type=int, default=2, help="K (default: 2)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--face-crop", action="store_true",
                        help="crop the largest face (OpenCV Haar cascade) before resizing")
    parser.add_argument("--cache-dir", default="cache", help="cache root (default: cache)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-shards", type=int, default=0, help="0: the runner decides")
    return parser


def config_from_args(args):
    """The `EmbedConfig` of parsed arguments."""
    return EmbedConfig(
        data=args.data, backbone=args.backbone, alpha=args.alpha, weights=args.weights,
        image_size=args.image_size, augment=args.augment, augment_copies=args.augment_copies,
        val_fraction=args.val_fraction, seed=args.seed, face_crop=args.face_crop,
        cache_root=args.cache_dir,
        batch_size=args.batch_size, num_shards=args.num_shards)


def run(argv=None, test_pipeline=None):
    """Parses `argv` and runs the job; returns the `EmbedResult`."""
    args, beam_args = build_parser().parse_known_args(argv)
    if not any(arg.startswith("--runner") for arg in beam_args):
        beam_args = DEFAULT_RUNNER_ARGS + beam_args
    config = config_from_args(args)
    return run_embed(config, pipeline_options=PipelineOptions(beam_args),
                     test_pipeline=test_pipeline)


def summary(result):
    """A few readable lines about a cache."""
    manifest = result.manifest
    lines = [f"{'reused' if result.reused else 'wrote'} cache {manifest['cache_key']}: "
             f"{manifest['config']['backbone']}, {manifest['embedding_dim']}-d embeddings, "
             f"weights {manifest['weights_used']}, classes {', '.join(manifest['class_names'])}"]
    for split, entry in sorted(manifest["counts"].items()):
        lines.append(f"  {split}: {entry['images']} images, {entry['records']} records "
                     f"(per class {entry['per_class']})")
    lines.append(f"  skipped: {manifest['num_skipped']}"
                 + "".join(f"\n    {s['path'] or s['id']}: {s['reason']}"
                           for s in manifest["skipped"][:20]))
    return "\n".join(lines)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    try:
        result = run(argv)
    except ValueError as err:
        sys.exit(f"error: {err}")
    print(summary(result))
    print(result.cache_dir)


if __name__ == "__main__":
    main()
