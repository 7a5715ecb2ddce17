"""Running the embed job: prepare in the driver, run the pipeline, account, publish.

    prepare   open the source (a folder's class folders; a list or a glob is read whole),
              decide face crop and the input size on a fixed sample of about 64 images when
              asked to (`"auto"`, the defaults), build the backbone once (refuse bad weights
              before any work), find a previous cache with the same config key
    run       `pipeline.features.embed.EmbedImages` on any runner, with progress followed from files
    account   `pipeline.features.accounting.account`: every listed image has its records or a reason
    publish   the cache key (config + data fingerprint, known now) names the cache; the manifest
              appears last; an identical complete cache already there is simply reused

The driver reads no image beyond that fixed sample and lists no folder's files (a list's text
and a glob's matched names are read whole); the pipeline graph does not grow with the data.
"""
import dataclasses
import posixpath
import threading
import time

import apache_beam as beam
import numpy as np
import tensorflow as tf

from pipeline.batch import outputs
from pipeline.batch.options import pipeline_options as pipeline_options_of
from pipeline.batch.runner import drop_scratch, run_pipeline
from pipeline.data.faces import crop_to_box, face_box, probe_faces
from pipeline.data.images import ImageError, decode_image, probe_image_size
from pipeline.data.sources import TfdsSource, open_source, read_bytes
from pipeline.features.accounting import account
from pipeline.features.backbones import get_spec, weights_digest
from pipeline.features.config import (DATA_PROBE_IMAGES, FORMAT_VERSION, EmbedConfig, cache_key,
                                      config_key)
from pipeline.features.embed import EmbedImages, shared_embedder

__all__ = ["EmbedResult", "build_embed_pipeline", "run_embed"]


@dataclasses.dataclass(frozen=True)
class EmbedResult:
    """What `run_embed` did.

    Attributes:
        cache_dir: the cache folder.
        manifest: its manifest dict.
        reused: True when the data and config matched a complete cache, which was kept as is.
        embedded: images that went through the backbone in this run.
        reused_images: images whose records were copied from a previous cache in this run.
        warnings: one line each about what the run worked around (a damaged previous cache).
    """

    cache_dir: str
    manifest: dict
    reused: bool
    embedded: int = 0
    reused_images: int = 0
    warnings: tuple = ()


@dataclasses.dataclass(frozen=True)
class _Prepared:
    config: EmbedConfig
    face_probe: dict | None
    size_probe: dict | None
    source: object
    weights: object
    weights_digest: str
    config_key: str
    base: dict | None
    run_dir: str


def _decide_on_data(config, source):
    """`config` with `face_crop` and `image_size` `"auto"` decided on a sample of the data.

    Only files are sampled (folders, lists, globs: `sample_paths`): TFDS data is not cropped and
    keeps the backbone's own size. The image size is decided on the images as they will be
    resized (face crops where face crop is on).

    Returns:
        `(config, face_probe, size_probe)`, a probe None where its field was not `"auto"`.
    """
    if "auto" not in (config.face_crop, config.image_size):
        return config, None, None
    images = []
    for path in ([] if isinstance(source, TfdsSource)
                 else source.sample_paths(DATA_PROBE_IMAGES)):
        try:
            images.append(decode_image(read_bytes(path)))
        except (ImageError, OSError, tf.errors.OpError):
            pass  # the pipeline skips and lists it
    # The detector runs once per image, for the face probe and for the crops the size probe reads.
    boxes = [face_box(image) for image in images] if config.face_crop is not False else None
    face_probe = size_probe = None
    if config.face_crop == "auto":
        face_probe = probe_faces(boxes)
        config = dataclasses.replace(config, face_crop=face_probe["faces"])
    if config.image_size == "auto":
        size_probe = probe_image_size(list(map(crop_to_box, images, boxes))
                                      if config.face_crop else images,
                                      get_spec(config.backbone).default_size)
        config = dataclasses.replace(config, image_size=size_probe["image_size"])
    return config, face_probe, size_probe


def _prepare(config):
    source = open_source(config.data, val_fraction=config.val_fraction, seed=config.seed,
                         follow_links=config.follow_links)
    config, face_probe, size_probe = _decide_on_data(config, source)
    embedder = shared_embedder(config.backbone, image_size=config.image_size,
                               weights=config.weights, alpha=config.alpha,
                               weights_dir=config.weights_dir)
    weights = embedder.weights_used
    digest = weights_digest(weights)
    key = config_key(config, weights_digest=digest)
    base = outputs.find_base(config.cache_root, key, accept=lambda manifest: (
        manifest.get("class_names") == list(source.class_names)))
    run_dir = outputs.new_run_dir(config.cache_root, key)
    # Trace the backbone's function while the pipeline starts: a worker in this process (the
    # local default) then finds it compiled.
    blank = np.zeros((config.batch_size, config.image_size, config.image_size, 3), np.float32)
    threading.Thread(target=embedder, args=(blank,), daemon=True).start()
    return _Prepared(config, face_probe, size_probe, source, weights, digest, key, base, run_dir)


def build_embed_pipeline(pipeline, config, *, source, weights, weights_digest, run_dir,
                         base=None):
    """Adds the embed job's steps to `pipeline` (listing, sharding, embedding, writing).

    Nothing here depends on the number of images: the graph is the same for ten or ten million.
    """
    return (pipeline
            | source.list_examples()
            | "EmbedImages" >> EmbedImages(config, weights=weights, weights_digest=weights_digest,
                                           run_dir=run_dir, base=base, links=source.links))


def _run_pipeline(config, prepared, pipeline_options, test_pipeline, show_progress):
    pipeline = test_pipeline or beam.Pipeline(options=pipeline_options or pipeline_options_of())
    build_embed_pipeline(pipeline, config, source=prepared.source, weights=prepared.weights,
                         weights_digest=prepared.weights_digest, run_dir=prepared.run_dir,
                         base=prepared.base)
    run_pipeline(pipeline, prepared.run_dir, desc="embed", show_progress=show_progress)


def run_embed(config, *, pipeline_options=None, test_pipeline=None, show_progress=False):
    """Runs the embed job for `config`: a new cache, or the complete one for the same inputs.

    Everything that can be refused is refused before any work: the source is checked (a
    folder's class folders, a list's lines, a glob's matches) and the backbone built (with its
    weights) in the driver first. Records of images whose id and content match a previous cache
    with the same config key are copied, not embedded again.

    Args:
        config: an `EmbedConfig`.
        pipeline_options: Beam `PipelineOptions` (runner and its options). Defaults to Beam's
            defaults.
        test_pipeline: a pipeline to build on instead of a new one (a test seam). Defaults to None.
        show_progress: show progress while the pipeline runs. Defaults to `False`.

    Returns:
        An `EmbedResult`.

    Raises:
        ValueError: bad data, backbone, weights or image size (one-line message), or a run that
            does not account for every listed image (`IncompleteRunError`; nothing published).
    """
    started = time.time()
    prepared = _prepare(config)
    config = prepared.config  # face_crop and image_size decided
    file_classes = (None if isinstance(prepared.source, TfdsSource)
                    else prepared.source.class_names)
    try:
        _run_pipeline(config, prepared, pipeline_options, test_pipeline, show_progress)
        run = account(prepared.run_dir, augment_copies=config.augment_copies,
                      class_names=file_classes)
    except BaseException:
        outputs.release(prepared.run_dir)  # nothing of a failed run is kept
        raise
    warnings = ((f"the previous cache {prepared.base['dir']} is damaged "
                 f"({', '.join(run.base_faults)}); its images were embedded again",)
                if run.base_faults else ())
    key = cache_key(config, data_fingerprint=run.fingerprint,
                    weights_digest=prepared.weights_digest)
    cache_dir = posixpath.join(config.cache_root, key)
    existed = tf.io.gfile.exists(cache_dir)
    drop_scratch(prepared.run_dir)
    manifest, published = outputs.publish(prepared.run_dir, cache_dir, _manifest(
        config, prepared, run, key, seconds=time.time() - started))
    if existed and published:  # a whole cache is kept; this one was not
        warnings += (f"the cache {cache_dir} was damaged or incomplete; replaced by this run",)
    return EmbedResult(cache_dir, manifest, reused=not published, embedded=run.embedded,
                       reused_images=run.reused, warnings=warnings)


def _manifest(config, prepared, run, key, *, seconds):
    source = prepared.source
    return {
        "format_version": FORMAT_VERSION, "cache_key": key, "config_key": prepared.config_key,
        "config": {**config.to_dict(), "format_version": FORMAT_VERSION},
        "source": {"data": config.data, "root": getattr(source, "root", None),
                   "location": getattr(source, "location", None) or getattr(source, "root", None),
                   "fingerprint": run.fingerprint},
        "class_names": list(source.class_names), "embedding_dim": run.embedding_dim,
        "counts": run.counts, "listed": run.listed,
        "skipped": run.skipped, "num_skipped": len(run.skipped),
        "no_face": run.no_face, "num_no_face": len(run.no_face),
        "face_probe": prepared.face_probe,
        "size_probe": prepared.size_probe,
        "num_shards": run.num_shards, "shards": run.shards,
        "embedded": run.embedded, "reused": run.reused,
        "base_cache": prepared.base and prepared.base["key"],
        "counters": {"listed": run.listed, "skipped": len(run.skipped),
                     "embedded": run.embedded, "reused": run.reused},
        "weights_used": prepared.weights, "weights_digest": prepared.weights_digest,
        "versions": outputs.versions(), "seconds": round(seconds, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "created_at": time.time(),
    }
