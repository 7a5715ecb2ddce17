"""Embed job: `python -m jobs.embed --data DIR|tfds:NAME --backbone NAME ... [Beam options]`.

Runs a frozen backbone over every image (plus K augmented copies of each training image) and
writes the feature cache `<cache-dir>/<key>/`. Arguments this parser does not know go to Beam's
`PipelineOptions` (`--runner`, `--project`, `--region`, `--temp_location`, `--setup_file`, ...).
The last line printed is the cache directory.
"""
import argparse
from argparse import RawDescriptionHelpFormatter

from jobs import add_verbose_flag, job_main
from pipeline.batch.runner import pipeline_options
from pipeline.data.augment import parse_augment
from pipeline.data.faces import FACE_SHARE
from pipeline.data.images import LARGE_IMAGE_SCALE
from pipeline.features.backbones import BACKBONES
from pipeline.features.config import EmbedConfig
from pipeline.features.embed_job import DATA_PROBE_IMAGES, run_embed

EXAMPLE = """example (real ImageNet weights offline, from a folder of Keras weight files):
  python -m jobs.embed --data ../shared/data/flower_photos --weights-dir ../shared/weights \\
    --cache-dir cache
  (default backbone MobileNetV2 alpha 0.5 at 224 px; the last line printed is the cache folder)
"""

def _weights(value):
    return None if value.lower() == "none" else value


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m jobs.embed",
                                     description=__doc__.split("\n")[0], epilog=EXAMPLE,
                                     formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="class-folder root, or tfds:NAME")
    parser.add_argument("--backbone", default=None, choices=sorted(BACKBONES), metavar="NAME",
                        help=f"backbone name; one of {', '.join(sorted(BACKBONES))} (default: "
                        f"{EmbedConfig.backbone} with alpha {EmbedConfig.alpha})")
    parser.add_argument("--alpha", type=float, default=None,
                        help="width multiplier (default: with no --backbone, "
                        f"{EmbedConfig.alpha}; with --backbone NAME, Keras's default 1.0)")
    parser.add_argument("--weights", type=_weights, default="imagenet",
                        help="imagenet (--weights-dir, then Keras's cache, then Keras's "
                        "download) | none (random, on purpose) | PATH (default: imagenet)")
    parser.add_argument("--weights-dir", default=None, metavar="DIR",
                        help="folder of Keras weight files under their Keras names (local or "
                        "gs://), searched first")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input side in pixels (default: the backbone's own, or "
                        f"{LARGE_IMAGE_SCALE}x it to a multiple of 32 where the median shorter "
                        f"side of {DATA_PROBE_IMAGES} sampled images is larger than that)")
    parser.add_argument("--augment", type=parse_augment, default="default",
                        help='"default" (flip, rotation 0.1, zoom 0.1, contrast 0.1), "none", or '
                        'ops such as "flip=horizontal,rotation=0.2,brightness=0.1"')
    parser.add_argument("--augment-copies", type=int, default=2, help="K (default: 2)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--face-crop", action=argparse.BooleanOptionalAction, default=None,
                        help="crop the largest face (OpenCV Haar cascade) before resizing "
                        "(default: when faces are found in at least "
                        f"{FACE_SHARE * 100:.0f}%% of {DATA_PROBE_IMAGES} sampled images)")
    parser.add_argument("--cache-dir", default="cache", help="cache root (default: cache)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-shards", type=int, default=0, help="0: the runner decides")
    return add_verbose_flag(parser)


def config_from_args(args):
    """The `EmbedConfig` of parsed arguments."""
    backbone, alpha = args.backbone, args.alpha
    if backbone is None:  # the default backbone comes with its width; NAME alone is Keras's
        backbone, alpha = EmbedConfig.backbone, EmbedConfig.alpha if alpha is None else alpha
    return EmbedConfig(
        data=args.data, backbone=backbone, alpha=alpha, weights=args.weights,
        weights_dir=args.weights_dir,
        image_size="auto" if args.image_size is None else args.image_size,
        augment=args.augment, augment_copies=args.augment_copies,
        val_fraction=args.val_fraction, seed=args.seed,
        face_crop="auto" if args.face_crop is None else args.face_crop,
        cache_root=args.cache_dir,
        batch_size=args.batch_size, num_shards=args.num_shards)


def run(argv=None, test_pipeline=None, show_progress=False):
    """Parses `argv` and runs the job; returns the `EmbedResult`."""
    args, beam_args = build_parser().parse_known_args(argv)
    config = config_from_args(args)
    return run_embed(config, pipeline_options=pipeline_options(beam_args),
                     test_pipeline=test_pipeline, show_progress=show_progress)


def summary(result):
    """A few readable lines about a cache."""
    manifest = result.manifest
    lines = [f"{'reused' if result.reused else 'wrote'} cache {manifest['cache_key']}: "
             f"{result.embedded} images embedded, {result.reused_images} reused from a previous "
             "cache", f"  "
             f"{manifest['config']['backbone']}, {manifest['embedding_dim']}-d embeddings, "
             f"weights {manifest['weights_used']}, classes {', '.join(manifest['class_names'])}"]
    for split, entry in sorted(manifest["counts"].items()):
        lines.append(f"  {split}: {entry['images']} images, {entry['records']} records "
                     f"(per class {entry['per_class']})")
    probe, face_crop = manifest.get("face_probe"), manifest["config"]["face_crop"]
    lines.append(f"  face crop: {'on' if face_crop else 'off'}" + (
        f" (faces found in {probe['with_face']} of {probe['sampled']} sampled images)"
        if probe else "") + (f", no face in {manifest['num_no_face']} images (kept whole)"
                             if face_crop else ""))
    size, sized = manifest["config"]["image_size"], manifest.get("size_probe")
    lines.append(f"  image size: {size} px" + (
        f" (median shorter side {sized['median_short_side']:.0f} px of {sized['sampled']} "
        f"sampled images; the backbone's own is {sized['native_size']})" if sized else ""))
    lines.append(f"  skipped: {manifest['num_skipped']}"
                 + "".join(f"\n    {s['path'] or s['id']}: {s['reason']}"
                           for s in manifest["skipped"][:20]))
    return "\n".join(lines)


def _report(result):
    print(summary(result))
    print(result.cache_dir)


main = job_main(build_parser, run, _report)


if __name__ == "__main__":
    main()
