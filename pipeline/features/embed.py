"""The embed job's Beam pipeline: a frozen backbone over every image and K augmented copies,
written as the shards of a feature cache.

    source.list_examples()     listing on the workers: (ref, bytes or None)
      -> ShardedPass           the pass every batch job shares (`pipeline.batch.spine`): count
                               the listing, shard = hash(id) mod N, one step per shard
         -> EmbedShard         read + digest, reuse unchanged records from a previous cache,
                               decode, augment, embed (backbone loaded once per worker), write
                               the shard whole (sorted, temp file then rename) and its index
                               (ids, digests, skipped files, counts, sha256)

What the driver needs afterwards is in files (`pipeline.features.accounting` reads and checks
them).
"""
import json
import threading

import apache_beam as beam
import tensorflow as tf

from pipeline.batch.spine import ShardedPass, ShardFn
from pipeline.data.augment import CopyAugmenter
from pipeline.data.images import prepare_image
from pipeline.features import shards
from pipeline.features.backbones import Embedder, weights_digest
from pipeline.features.records import EmbeddingRecord, from_example, records_per_image, to_example

__all__ = ["shared_embedder", "EmbedShardFn", "EmbedImages"]

_EMBEDDERS = {}
_EMBEDDERS_LOCK = threading.Lock()


def shared_embedder(backbone, *, image_size, weights, alpha, weights_dir=None):
    """The process's one `Embedder` for these arguments, built on first use.

    The driver builds it to refuse bad weights before any work; where the runner executes the
    pipeline in the driver's process (the local default), the workers' `setup()` gets the same
    model (asked for by the weights file the driver resolved) instead of building a second one.
    """
    key = (backbone, image_size, weights, alpha, weights_dir)
    with _EMBEDDERS_LOCK:
        if key not in _EMBEDDERS:
            embedder = Embedder(backbone, image_size=image_size, weights=weights, alpha=alpha,
                                weights_dir=weights_dir)
            _EMBEDDERS[key] = embedder
            _EMBEDDERS[(backbone, image_size, embedder.weights_used, alpha, None)] = embedder
        return _EMBEDDERS[key]


class EmbedShardFn(ShardFn):
    """The embed job's shard step (`pipeline.batch.spine.ShardFn`): each image's clean copy and
    K augmented copies through the backbone, written as the shard's TFRecords.

    The backbone and the augmenter are built once per worker in `setup()`. Batches are always
    padded to `batch_size` (the spine's), so an image's embedding never depends on which images
    share its batch.

    Args:
        config: the `EmbedConfig`.
        weights: the resolved weights to load.
        weights_digest: their content digest (`backbones.weights_digest`), computed by the
            driver; a worker that must find the weights itself insists on the same content.
        run_dir: the folder this run writes into.
        base: `{"dir": ..., "num_shards": ...}` of a complete cache with the same config key
            whose records are reused for unchanged images, or None. Defaults to `None`.
    """

    computed_key = "embedded"
    layout = shards

    def __init__(self, config, *, weights, weights_digest, run_dir, base=None, links=None):
        super().__init__(run_dir, base=base, links=links)
        self._config, self._weights = config, weights
        self._weights_digest = weights_digest
        self.batch_size = config.batch_size
        self._embedder = self._augment = None

    def load_model(self):
        config = self._config
        weights, weights_dir = self._weights, None
        resolve_here = bool(weights) and not tf.io.gfile.exists(weights)
        if resolve_here:
            # The driver's file is not on this worker (e.g. its Keras cache): resolve here, the
            # same way, and insist on the same file content.
            weights, weights_dir = config.weights, config.weights_dir
        self._embedder = shared_embedder(config.backbone, image_size=config.image_size,
                                         weights=weights, alpha=config.alpha,
                                         weights_dir=weights_dir)
        if resolve_here and (weights_digest(self._embedder.weights_used)
                             != self._weights_digest):
            raise ValueError(f"weights on this worker ({self._embedder.weights_used}) differ "
                             f"from the driver's ({self._weights}); use --weights-dir with a "
                             "folder every worker can read (e.g. gs://...)")
        if config.augment_copies:
            self._augment = CopyAugmenter(config.augment, seed=config.seed)

    def prepare(self, ref, data):
        return prepare_image(data, self._config.image_size, face_crop=self._config.face_crop)

    def add(self, ref, prepared, state):
        """Queues an image's clean copy and its K augmented copies for the backbone."""
        image, face_found = prepared
        if face_found is False:
            state.no_face.append({"id": ref.id, "path": ref.path})
        state.pending.append((image, (ref, 0)))
        for copy in range(1, records_per_image(ref.split, self._config.augment_copies)):
            state.pending.append((self._augment(image, example_id=ref.id, copy=copy),
                                  (ref, copy)))

    def run_batch(self, images, items):
        return self._embedder(images)

    def collect(self, items, outputs, state):
        for (ref, copy), vector in zip(items, outputs):
            record = EmbeddingRecord(id=ref.id, label=ref.label, label_name=ref.label_name,
                                     split=ref.split, copy=copy, embedding=vector,
                                     digest=ref.digest)
            state.results.append((ref.id, copy, to_example(record)))

    def copy_reused(self, to_reuse, state):
        """Copies the base records of unchanged images that have all their records there."""
        copied = {}
        base_n = self._base["num_shards"]
        for base_shard in sorted({shard for _, shard in to_reuse.values()}):
            path = self.base_path(shards.shard_name(base_shard, base_n))
            if not tf.io.gfile.exists(path):
                continue
            for serialized in shards.read_shard_records(path):
                record = from_example(serialized)
                if record.id in to_reuse:
                    copied.setdefault(record.id, []).append((record.id, record.copy, serialized))
        complete = {example_id for example_id, (ref, _) in to_reuse.items()
                    if len(copied.get(example_id, ())) == records_per_image(
                        ref.split, self._config.augment_copies)}
        for example_id in sorted(complete):
            state.results.extend(copied[example_id])
        return complete

    def write(self, state):
        state.results.sort(key=lambda record: record[:2])
        name = shards.shard_name(state.shard, state.num_shards)
        written = shards.write_shard(self.run_path(name),
                                     (serialized for _, _, serialized in state.results))
        return {"file": name, **written}

    def index_extras(self, state):
        splits = {entry["id"]: (entry["split"], entry["label_name"]) for entry in state.entries}
        counts = {}
        for example_id, copy, _ in state.results:
            split, label_name = splits[example_id]
            key = json.dumps([split, label_name, copy])
            counts[key] = counts.get(key, 0) + 1
        return {"counts": counts, "embedding_dim": self._embedder.embedding_dim}


class EmbedImages(beam.PTransform):
    """`(ref, bytes or None)` pairs -> cache shards and indexes written into `run_dir`: the
    shared `ShardedPass` with `EmbedShardFn` as its step.

    Args:
        config: the `EmbedConfig` (its `num_shards`: 0 picks one shard per
            `shards.IMAGES_PER_SHARD` listed images).
        weights: the resolved weights to load on the workers.
        weights_digest: their content digest (see `EmbedShardFn`).
        run_dir: the folder to write into.
        base: a previous cache to reuse records from (see `EmbedShardFn`). Defaults to `None`.
        links: the source's `LinkPolicy` (see `ShardFn`). Defaults to `None`.
    """

    def __init__(self, config, *, weights, weights_digest, run_dir, base=None, links=None):
        super().__init__()
        self._config, self._weights, self._run_dir, self._base = config, weights, run_dir, base
        self._weights_digest, self._links = weights_digest, links

    def expand(self, pairs):
        return pairs | "ShardedPass" >> ShardedPass(
            EmbedShardFn(self._config, weights=self._weights,
                         weights_digest=self._weights_digest, run_dir=self._run_dir,
                         base=self._base, links=self._links),
            step="EmbedShard", run_dir=self._run_dir, num_shards=self._config.num_shards)
