"""Embed job: `python -m jobs.embed --data DIR|LIST.csv|GLOB|tfds:NAME --backbone NAME ... [Beam options]`.

Runs a frozen backbone over every image (plus K augmented copies of each training image) and
writes the feature cache `<cache-dir>/<key>/`. Beam's own options (`--runner`, `--project`,
`--region`, `--temp_location`, `--setup_file`, ...) go to Beam; any other argument is refused in
one line.
The last line printed is the cache directory.
"""
from jobs.cli import Job, add_config_flags, config_from
from pipeline.features.config import EmbedConfig

EXAMPLE = """example (real ImageNet weights offline, from a folder of Keras weight files):
  python -m jobs.embed --data ../shared/data/flower_photos --weights-dir ../shared/weights \\
    --cache-dir cache
  (default backbone MobileNetV2 alpha 0.5; image size from the data: 224 px, or 288 px where
  the sampled images are larger, as in flower_photos; the last line printed is the cache folder)
"""


def _run(args, *, test_pipeline=None, show_progress=False):
    from pipeline.batch.options import pipeline_options  # noqa: PLC0415  (TensorFlow, Beam:
    from pipeline.features.embed_job import run_embed  # noqa: PLC0415  after the output is set)

    return run_embed(config_from(EmbedConfig, args),
                     pipeline_options=pipeline_options(args.beam_args),
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


def _report(result, args):
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(summary(result))
    print(result.cache_dir)


JOB = Job("embed", __doc__, EXAMPLE, flags=lambda parser: add_config_flags(parser, EmbedConfig),
          run=_run, report=_report, beam=True)
main, run, build_parser = JOB.main, JOB.run_argv, JOB.build_parser


if __name__ == "__main__":
    main()
