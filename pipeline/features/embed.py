"""The embed job's Beam pipeline: a frozen backbone over every image and K augmented copies,
written as the shards of a feature cache.

    source.list_examples()            listing on the workers: (ref, bytes or None)
      -> GatherListing, AssignShards  count the listing (written for the driver to check against),
                                      fix the shard count, shard = hash(id) mod the shard count
      -> GroupShards                  GroupByKey: one element per shard
      -> EmbedShard                   read + digest, reuse unchanged records from a previous cache,
                                      decode, augment, embed (backbone loaded once per worker),
                                      write the shard whole (sorted, temp file then rename) and its
                                      index (ids, digests, skipped files, counts, sha256)

The pipeline keeps to what every runner executes correctly (FnApiRunner, Dask, the portable
runner, Dataflow): one chain that ends in one step, no output from `finish_bundle`, no metrics;
what the driver needs afterwards is in files (`pipeline.features.accounting` reads and checks them).
"""
import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import posixpath
import threading
import time

import apache_beam as beam
import numpy as np
import tensorflow as tf

from pipeline.data.augment import CopyAugmenter
from pipeline.data.fingerprint import combine_hashes, entry_hash
from pipeline.data.images import ImageError, prepare_image
from pipeline.data.sources import read_bytes
from pipeline.features import shards
from pipeline.features.accounting import LISTED_FILE
from pipeline.features.backbones import Embedder, weights_digest
from pipeline.features.records import EmbeddingRecord, from_example, records_per_image, to_example

__all__ = ["PROGRESS_DIR", "shared_embedder", "EmbedShardFn", "EmbedImages"]

#: Folder of `shard-SSSSS.json` files, `{"done": n}`, that the driver follows for progress.
PROGRESS_DIR = "_progress"
_PROGRESS_SECONDS = 2.0
#: Images decoded ahead of the backbone, by `_DECODE_THREADS` threads.
_DECODE_AHEAD, _DECODE_THREADS = 64, 2
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


def _prefetch(function, items, *, ahead=_DECODE_AHEAD, threads=_DECODE_THREADS):
    """`map(function, items)` in order, computed up to `ahead` items early on a thread pool."""
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        queue = collections.deque()
        for item in items:
            queue.append(pool.submit(function, item))
            if len(queue) > ahead:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()


def _reason(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class _ShardState:
    """What one shard has done so far: records, index entries, skipped files, counts."""

    def __init__(self, shard, num_shards, listed):
        self.shard, self.num_shards, self.listed = shard, num_shards, listed
        self.records, self.entries, self.skipped, self.no_face = [], [], [], []
        self.embedded = self.reused = 0

    def add_entry(self, ref):
        self.entries.append({"id": ref.id, "label_name": ref.label_name, "split": ref.split,
                             "digest": ref.digest})

    def index(self, written, *, embedding_dim):
        """The shard's index, from what was written (`written`: `shards.write_shard`'s result)."""
        splits = {entry["id"]: (entry["split"], entry["label_name"]) for entry in self.entries}
        counts = {}
        for example_id, copy, _ in self.records:
            split, label_name = splits[example_id]
            key = json.dumps([split, label_name, copy])
            counts[key] = counts.get(key, 0) + 1
        listed = self.entries + self.skipped
        return {
            "shard": self.shard, "num_shards": self.num_shards, "listed": self.listed,
            "file": shards.shard_name(self.shard, self.num_shards),
            "entries": self.entries, "skipped": self.skipped, "no_face": self.no_face,
            "counts": counts, "embedded": self.embedded, "reused": self.reused,
            "embedding_dim": embedding_dim, **written,
            "fingerprint": combine_hashes(
                entry_hash(item["id"], item.get("label_name", ""), item["digest"])
                for item in listed),
        }


class EmbedShardFn(beam.DoFn):
    """`(shard, [(num_shards, (ref, bytes or None)), ...])` -> the shard and its index, written.

    Yields a small summary per shard. The backbone and the augmenter are built once per worker
    in `setup()`. Batches are always padded to `batch_size`, so an image's embedding never
    depends on which images share its batch.

    Args:
        config: the `EmbedConfig`.
        weights: the resolved weights to load.
        weights_digest: their content digest (`backbones.weights_digest`), computed by the
            driver; a worker that must find the weights itself insists on the same content.
        run_dir: the folder this run writes into.
        base: `{"dir": ..., "num_shards": ...}` of a complete cache with the same config key
            whose records are reused for unchanged images, or None. Defaults to `None`.
    """

    def __init__(self, config, *, weights, weights_digest, run_dir, base=None):
        self._config, self._weights, self._run_dir, self._base = config, weights, run_dir, base
        self._weights_digest = weights_digest
        self._embedder = self._augment = None

    def setup(self):
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

    def process(self, element):
        shard, items = element
        items = sorted(items, key=lambda item: item[1][0].id)
        state = _ShardState(shard, items[0][0], len(items))
        reusable = self._reusable_base_entries([pair[0].id for _, pair in items])
        to_reuse, pending, last = {}, [], time.monotonic()
        load = functools.partial(self._load, reusable=reusable)
        for done, (ref, data, loaded) in enumerate(_prefetch(load, items), start=1):
            if isinstance(loaded, Exception):
                state.skipped.append(_skipped(ref, loaded))
            elif loaded is _REUSE:
                # Bytes that travelled with the ref (TFDS) are kept in case the copy fails.
                to_reuse[ref.id] = (ref, reusable[ref.id]["shard"], None if ref.path else data)
            else:
                self._add(ref, loaded, state, pending)
            if len(pending) >= self._config.batch_size:
                self._embed(pending, state)
            if time.monotonic() - last >= _PROGRESS_SECONDS:
                self._progress(shard, done)
                last = time.monotonic()
        self._reuse(to_reuse, state, pending)
        self._embed(pending, state)
        self._write(state)
        self._progress(shard, len(items))
        yield {"shard": shard, "listed": state.listed, "embedded": state.embedded,
               "reused": state.reused, "skipped": len(state.skipped)}

    def _load(self, item, *, reusable):
        """Reads, digests and decodes one image (on a decode thread).

        Returns:
            `(ref with its digest, bytes, loaded)`: loaded is `(image, face_found)`, `_REUSE`
            when a base cache holds the image's records, or the exception that skips it.
        """
        _, (ref, data) = item
        try:
            data = read_bytes(ref.path) if data is None else data
        except (OSError, tf.errors.OpError) as err:
            return ref, None, err
        ref = dataclasses.replace(ref, digest=hashlib.sha256(data).hexdigest())
        if _same(reusable.get(ref.id), ref):
            return ref, data, _REUSE
        try:
            return ref, data, prepare_image(data, self._config.image_size,
                                            face_crop=self._config.face_crop)
        except ImageError as err:
            return ref, data, err

    def _add(self, ref, loaded, state, pending):
        """Queues an image's clean copy and its K augmented copies for the backbone."""
        image, face_found = loaded
        if face_found is False:
            state.no_face.append({"id": ref.id, "path": ref.path})
        state.add_entry(ref)
        state.embedded += 1
        pending.append((ref, 0, image))
        for copy in range(1, records_per_image(ref.split, self._config.augment_copies)):
            pending.append((ref, copy, self._augment(image, example_id=ref.id, copy=copy)))

    def _embed(self, pending, state):
        """Embeds every pending image in padded batches of exactly `batch_size`."""
        size = self._config.batch_size
        while pending:
            batch, pending[:] = pending[:size], pending[size:]
            images = np.stack([image for _, _, image in batch])
            padded = np.concatenate([images, np.zeros((size - len(batch),) + images.shape[1:],
                                                      images.dtype)])
            for (ref, copy, _), vector in zip(batch, self._embedder(padded)):
                record = EmbeddingRecord(id=ref.id, label=ref.label, label_name=ref.label_name,
                                         split=ref.split, copy=copy, embedding=vector,
                                         digest=ref.digest)
                state.records.append((ref.id, copy, to_example(record)))

    def _reusable_base_entries(self, ids):
        """`{id: base index entry (with its base shard)}` for this shard's ids, from the base."""
        if not self._base:
            return {}
        wanted, base_n = set(ids), self._base["num_shards"]
        found = {}
        for base_shard in sorted({shards.shard_of(i, base_n) for i in wanted}):
            index = shards.read_index(posixpath.join(
                self._base["dir"], shards.index_name(base_shard, base_n))) or {"entries": []}
            found.update((entry["id"], {**entry, "shard": base_shard})
                         for entry in index["entries"] if entry["id"] in wanted)
        return found

    def _reuse(self, to_reuse, state, pending):
        """Copies the base records of unchanged images; any not found there are embedded."""
        expected = {i: records_per_image(ref.split, self._config.augment_copies)
                    for i, (ref, _, _) in to_reuse.items()}
        copied = {}
        base_n = self._base["num_shards"] if self._base else 0
        for base_shard in sorted({s for _, s, _ in to_reuse.values()}):
            path = posixpath.join(self._base["dir"], shards.shard_name(base_shard, base_n))
            if not tf.io.gfile.exists(path):
                continue
            for serialized in shards.read_shard_records(path):
                record = from_example(serialized)
                if record.id in to_reuse:
                    copied.setdefault(record.id, []).append((record.id, record.copy, serialized))
        for example_id, (ref, _, data) in sorted(to_reuse.items()):
            if len(copied.get(example_id, ())) == expected[example_id]:
                state.records.extend(copied[example_id])
                state.add_entry(ref)
                state.reused += 1
            else:
                _, _, loaded = self._load((0, (ref, data)), reusable={})
                if isinstance(loaded, Exception):
                    state.skipped.append(_skipped(ref, loaded))
                else:
                    self._add(ref, loaded, state, pending)

    def _write(self, state):
        state.records.sort(key=lambda record: record[:2])
        directory, n = self._run_dir, state.num_shards
        written = shards.write_shard(posixpath.join(directory, shards.shard_name(state.shard, n)),
                                     (serialized for _, _, serialized in state.records))
        shards.write_index(posixpath.join(directory, shards.index_name(state.shard, n)),
                           state.index(written, embedding_dim=self._embedder.embedding_dim))

    def _progress(self, shard, done):
        path = posixpath.join(self._run_dir, PROGRESS_DIR, f"shard-{shard:05d}.json")
        with tf.io.gfile.GFile(path, "w") as handle:
            handle.write(json.dumps({"done": done}))


#: `EmbedShardFn._load`'s mark for an image whose records a base cache holds.
_REUSE = object()


def _skipped(ref, err):
    return {"id": ref.id, "path": ref.path, "label_name": ref.label_name,
            "digest": ref.digest or "unreadable", "reason": _reason(err)}


def _same(base_entry, ref):
    return bool(base_entry) and all(base_entry[key] == getattr(ref, key)
                                    for key in ("digest", "label_name", "split"))


def _assign_shards(element, run_dir, num_shards):
    """`(0, every pair)` -> `(shard, (shard count, pair))` for each pair; records the count."""
    _, pairs = element
    pairs = list(pairs)
    num_shards = num_shards or shards.auto_num_shards(len(pairs))
    with tf.io.gfile.GFile(posixpath.join(run_dir, LISTED_FILE), "w") as handle:
        handle.write(json.dumps({"listed": len(pairs), "num_shards": num_shards}))
    for pair in pairs:
        yield shards.shard_of(pair[0].id, num_shards), (num_shards, pair)


class EmbedImages(beam.PTransform):
    """`(ref, bytes or None)` pairs -> shards and indexes written into `run_dir`.

    The listing is gathered once (`GatherListing`, a `GroupByKey` on one key) to count it and
    fix the shard count, rather than through a side input: every runner executes a straight
    chain of `ParDo`s and `GroupByKey`s correctly (Beam 2.77's DaskRunner miscounts a side
    input's branch). Only references pass through it, except for TFDS, whose bytes travel with
    their references.

    Args:
        config: the `EmbedConfig` (its `num_shards`: 0 picks one shard per
            `shards.IMAGES_PER_SHARD` listed images).
        weights: the resolved weights to load on the workers.
        weights_digest: their content digest (see `EmbedShardFn`).
        run_dir: the folder to write into.
        base: a previous cache to reuse records from (see `EmbedShardFn`). Defaults to `None`.
    """

    def __init__(self, config, *, weights, weights_digest, run_dir, base=None):
        super().__init__()
        self._config, self._weights, self._run_dir, self._base = config, weights, run_dir, base
        self._weights_digest = weights_digest

    def expand(self, pairs):
        return (pairs
                | "KeyAll" >> beam.Map(lambda pair: (0, pair))
                | "GatherListing" >> beam.GroupByKey()
                | "AssignShards" >> beam.FlatMap(_assign_shards, self._run_dir,
                                                 self._config.num_shards)
                | "GroupShards" >> beam.GroupByKey()
                | "EmbedShard" >> beam.ParDo(EmbedShardFn(
                    self._config, weights=self._weights, weights_digest=self._weights_digest,
                    run_dir=self._run_dir, base=self._base)))
