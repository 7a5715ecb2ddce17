"""The embed job: a frozen backbone over every image and K augmented copies, as an Apache Beam
pipeline that writes the feature cache.

    source -> Decode (RGB, Keras resize) -> Augment (clean + K copies for training images)
           -> Embed (RunInference, backbone loaded once per worker) -> ToExample -> WriteShards
                  \\-> skipped files (with reasons) -> skipped.jsonl

One code path serves every runner: the DirectRunner here, Prism, and Dataflow (`--setup_file`).
"""
import dataclasses
import hashlib
import json
import logging
import platform
import posixpath
import time
from collections.abc import Iterable, Sequence

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.metrics.metric import Metrics, MetricsFilter
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import cache
from pipeline.augment import CopyAugmenter
from pipeline.backbones import Embedder, build_backbone, weights_digest
from pipeline.config import FORMAT_VERSION, cache_key
from pipeline.images import ImageError, prepare_image
from pipeline.records import EmbeddingRecord, to_example
from pipeline.sources import open_source

__all__ = ["EmbedResult", "LoadImagesFn", "AugmentFn", "BackboneModelHandler", "EmbedImages",
           "run_embed"]

_LOG = logging.getLogger(__name__)
_NAMESPACE = "embed"
_SKIPPED = "skipped"
_NO_FACE = "no_face"
_PROGRESS_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class EmbedResult:
    """What `run_embed` did.

    Attributes:
        cache_dir: the cache folder.
        manifest: its manifest dict.
        reused: True when a complete cache was found and nothing was computed.
    """

    cache_dir: str
    manifest: dict
    reused: bool


class _Progress:
    """Per-worker counts of read / embedded / skipped images, logged every few seconds."""

    def __init__(self):
        self.counts = {"read": 0, "embedded": 0, "skipped": 0}
        self._start = self._last = time.monotonic()

    def add(self, name, n=1):
        self.counts[name] += n
        now = time.monotonic()
        if now - self._last >= _PROGRESS_SECONDS:
            self._last = now
            rate = self.counts["embedded"] / max(now - self._start, 1e-9)
            _LOG.info("progress (this worker): read %d, embedded %d (%.1f/s), skipped %d",
                      self.counts["read"], self.counts["embedded"], rate, self.counts["skipped"])


_PROGRESS = _Progress()


class LoadImagesFn(beam.DoFn):
    """`(ref, bytes or None)` -> `(ref, float32 image)`; unreadable files go to output `skipped`.

    With `face_crop`, images where no face was found are kept whole and also go to `no_face`.

    Args:
        image_size: the side to resize to.
        face_crop: crop the largest face first. Defaults to `False`.
    """

    def __init__(self, image_size, *, face_crop=False):
        self._image_size, self._face_crop = image_size, face_crop
        self._no_face = Metrics.counter(_NAMESPACE, "no_face")
        self._read = Metrics.counter(_NAMESPACE, "read")
        self._skipped = Metrics.counter(_NAMESPACE, "skipped")

    def process(self, element):
        ref, data = element
        self._read.inc()
        _PROGRESS.add("read")
        try:
            if data is None:
                with tf.io.gfile.GFile(ref.path, "rb") as handle:
                    data = handle.read()
            image, face_found = prepare_image(data, self._image_size, face_crop=self._face_crop)
            if not ref.digest:
                ref = dataclasses.replace(ref, digest=hashlib.sha256(data).hexdigest())
        except (ImageError, OSError, tf.errors.OpError) as err:
            self._skipped.inc()
            _PROGRESS.add("skipped")
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            _LOG.warning("skipping %s: %s", ref.path or ref.id, reason)
            yield beam.pvalue.TaggedOutput(_SKIPPED, {"id": ref.id, "path": ref.path,
                                                      "reason": reason})
            return
        if face_found is False:
            self._no_face.inc()
            yield beam.pvalue.TaggedOutput(_NO_FACE, {"id": ref.id, "path": ref.path})
        yield ref, image


class AugmentFn(beam.DoFn):
    """`(ref, image)` -> `((ref, 0), image)` plus `((ref, k), copy k)` for k in 1..K (training).

    The augmentation layers are built once per worker in `setup()`.

    Args:
        augment: the `AugmentConfig`.
        copies: K.
        seed: the job's seed.
    """

    def __init__(self, augment, *, copies, seed):
        self._augment_config, self._copies, self._seed = augment, copies, seed
        self._augment = None

    def setup(self):
        if self._copies:
            self._augment = CopyAugmenter(self._augment_config, seed=self._seed)

    def process(self, element):
        ref, image = element
        yield (ref, 0), image
        if ref.split == "train":
            for copy in range(1, self._copies + 1):
                yield (ref, copy), self._augment(image, example_id=ref.id, copy=copy)


class BackboneModelHandler(ModelHandler):
    """A RunInference model handler for a frozen backbone: images in, embeddings out.

    Args:
        backbone: registry name.
        image_size: input side.
        weights: resolved weights (`"imagenet"`, a file path, or None).
        alpha: width multiplier, or None.
        batch_size: images per backbone call.
    """

    def __init__(self, *, backbone, image_size, weights, alpha, batch_size):
        super().__init__()
        self._kwargs = {"image_size": image_size, "weights": weights, "alpha": alpha}
        self._backbone, self._batch_size = backbone, batch_size

    def load_model(self):
        return Embedder(self._backbone, **self._kwargs)

    def run_inference(self, batch: Sequence[np.ndarray], model: Embedder,
                      inference_args=None) -> Iterable[np.ndarray]:
        vectors = model(np.stack(batch))
        _PROGRESS.add("embedded", len(batch))
        return list(vectors)

    def get_num_bytes(self, batch):
        return sum(image.nbytes for image in batch)

    def batch_elements_kwargs(self):
        return {"min_batch_size": self._batch_size, "max_batch_size": self._batch_size}

    def get_metrics_namespace(self):
        return _NAMESPACE


def _to_record(key, embedding):
    ref, copy = key
    return EmbeddingRecord(id=ref.id, label=ref.label, label_name=ref.label_name,
                           split=ref.split, copy=copy, embedding=embedding, digest=ref.digest)


class EmbedImages(beam.PTransform):
    """`(ref, bytes or None)` pairs -> `{"records": EmbeddingRecord, "skipped": dict,
    "no_face": dict}`.

    Args:
        config: the `EmbedConfig`.
        weights: the resolved weights to load on the workers.
    """

    def __init__(self, config, *, weights):
        super().__init__()
        self._config, self._weights = config, weights

    def expand(self, pairs):
        config = self._config
        handler = BackboneModelHandler(
            backbone=config.backbone, image_size=config.image_size, weights=self._weights,
            alpha=config.alpha, batch_size=config.batch_size)
        loaded = pairs | "Decode" >> beam.ParDo(LoadImagesFn(
            config.image_size, face_crop=config.face_crop)).with_outputs(
                _SKIPPED, _NO_FACE, main="images")
        records = (
            loaded.images
            | "Augment" >> beam.ParDo(AugmentFn(config.augment, copies=config.augment_copies,
                                                seed=config.seed))
            | "Embed" >> RunInference(KeyedModelHandler(handler))
            | "ToRecord" >> beam.MapTuple(_to_record))
        return {"records": records, "skipped": loaded[_SKIPPED], "no_face": loaded[_NO_FACE]}


def _write(outputs, cache_dir, num_shards):
    _ = (outputs["records"]
         | "ToExample" >> beam.Map(to_example)
         | "WriteShards" >> beam.io.WriteToTFRecord(
             posixpath.join(cache_dir, cache.SHARD_PREFIX), file_name_suffix=".tfrecord",
             num_shards=num_shards))
    for name, filename in (("skipped", cache.SKIPPED), ("no_face", cache.NO_FACE)):
        _ = (outputs[name]
             | f"{name}ToJson" >> beam.Map(lambda item: json.dumps(item, sort_keys=True))
             | f"Write_{name}" >> beam.io.WriteToText(
                 posixpath.join(cache_dir, filename), shard_name_template=""))


def run_embed(config, *, pipeline_options=None, test_pipeline=None):
    """Runs the embed job for `config`, or reuses its complete cache.

    Everything that can be refused is refused before any work: the data source is listed and the
    backbone built (with its weights) in the driver first.

    Args:
        config: an `EmbedConfig`.
        pipeline_options: Beam `PipelineOptions` (runner and its options). Defaults to the
            DirectRunner in-memory.
        test_pipeline: a pipeline to build on instead of a new one (a test seam). Defaults to None.

    Returns:
        An `EmbedResult`.

    Raises:
        ValueError: bad data, backbone, weights or image size (one-line message).
    """
    started = time.time()
    source = open_source(config.data, val_fraction=config.val_fraction, seed=config.seed)
    model, weights = build_backbone(config.backbone, image_size=config.image_size,
                                    weights=config.weights, alpha=config.alpha)
    del model
    key = cache_key(config, data_fingerprint=source.fingerprint,
                    weights_digest=weights_digest(weights))
    cache_dir = posixpath.join(config.cache_root, key)
    try:
        manifest = cache.read_manifest(cache_dir)
        _LOG.info("cache %s is complete: reusing it", cache_dir)
        return EmbedResult(cache_dir, manifest, reused=True)
    except cache.CacheError:
        pass
    cache.reset_partial(cache_dir)
    _LOG.info("embedding %s with %s (%s px, weights %s, K=%d) into %s", config.data,
              config.backbone, config.image_size, weights, config.augment_copies, cache_dir)
    pipeline = test_pipeline or beam.Pipeline(options=pipeline_options or PipelineOptions())
    outputs = pipeline | source.read() | "EmbedImages" >> EmbedImages(config, weights=weights)
    _write(outputs, cache_dir, config.num_shards)
    result = pipeline.run()
    result.wait_until_finish()
    manifest = cache.finalize(
        cache_dir, cache_key=key, class_names=source.class_names,
        config={**config.to_dict(), "format_version": FORMAT_VERSION},
        source={"data": config.data, "root": getattr(source, "root", None),
                "fingerprint": source.fingerprint},
        extra={"weights_used": weights, "weights_digest": weights_digest(weights),
               "counters": _counters(result), "versions": _versions(),
               "seconds": round(time.time() - started, 3),
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return EmbedResult(cache_dir, manifest, reused=False)


def _counters(result):
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(_NAMESPACE))["counters"]
    except (NotImplementedError, KeyError, AttributeError):
        return {}
    totals = {}
    for counter in counters:
        name = counter.key.metric.name
        totals[name] = totals.get(name, 0) + (counter.committed or counter.attempted or 0)
    return totals


def _versions():
    import keras
    import sklearn

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "apache_beam": beam.__version__,
            "numpy": np.__version__, "scikit_learn": sklearn.__version__}
