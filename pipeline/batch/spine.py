"""The pass over images that the embed and predict jobs share: listing to shards to one step each.

    source.list_examples()            listing on the workers: (ref, bytes or None)
      -> KeyAll, GatherListing        the listing gathered once, to count it
      -> AssignShards                 write the count for the driver, fix the shard count,
                                      shard = hash(id) mod the shard count
      -> GroupShards                  GroupByKey: one element per shard
      -> <step>                       a `ShardFn`: read + digest, reuse the results of unchanged
                                      images from an earlier output, prepare, run the model in
                                      batches (loaded once per worker), write the shard whole and
                                      its index (ids, digests, skipped files, counts, sha256)

It keeps to what every runner executes correctly (FnApiRunner, Dask, the portable runner,
Dataflow): one chain that ends in one step, no output from `finish_bundle`, no metrics, no side
inputs; what the driver needs afterwards is in files (`pipeline.batch.accounting`). A job says
only what its shard step does, by subclassing `ShardFn`.
"""
import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import posixpath
import time

import apache_beam as beam
import numpy as np
import tensorflow as tf

from pipeline.batch import layout
from pipeline.batch.accounting import LISTED_FILE
from pipeline.batch.state import ShardState, reason_of, refused_items
from pipeline.data.images import ImageError
from pipeline.data.sources import read_bytes
from pipeline.files import file_sha256

__all__ = ["PROGRESS_DIR", "ShardFn", "ShardedPass", "prefetch"]

#: Folder of `shard-SSSSS.json` files, `{"done": n}`, that the driver follows for progress.
PROGRESS_DIR = "_progress"
_PROGRESS_SECONDS = 2.0
#: Images decoded ahead of the model, by `_DECODE_THREADS` threads.
_DECODE_AHEAD, _DECODE_THREADS = 64, 2


def prefetch(function, items, *, ahead=_DECODE_AHEAD, threads=_DECODE_THREADS):
    """`map(function, items)` in order, computed up to `ahead` items early on a thread pool."""
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        queue = collections.deque()
        for item in items:
            queue.append(pool.submit(function, item))
            if len(queue) > ahead:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()


#: `ShardFn._load`'s mark for an image whose results a base output holds.
_REUSE = object()


class ShardFn(beam.DoFn):
    """`(shard, [(num_shards, (ref, bytes or None)), ...])` -> the shard and its index, written.

    The shared part of every pass's shard step: images sorted by id, read and digested (and
    prepared) on decode threads, the model run on padded batches of exactly `batch_size` on a
    thread of its own (each batch while the next is gathered and the last one's results
    collected, so that an image's output never depends on its batch neighbours and the model
    never waits for Python), the results of unchanged images copied from a base output,
    skipped files recorded with their reason, progress written every few seconds, the index
    written after the shard's own file. A subclass says what its step does:

        load_model()                  once per worker, in `setup()`
        prepare(ref, data)            on a decode thread: the model's input; raises `ImageError`
        add(ref, prepared, state)     queue `(image, item)` pairs for the model (`state.pending`)
        run_batch(images, items)      on the model thread: the model's outputs for a batch
                                      (float32, `batch_size` images, zeros after the items)
        collect(items, outputs, state)  the batch's results (`state.results`), in order
        copy_reused(to_reuse, state)  copy the base's results of `{id: (ref, base shard)}`;
                                      returns the ids copied
        write(state)                  write the shard's file; returns `{"file", "records",
                                      "sha256", "bytes"}`
        index_extras(state)           the step's own fields of the index

    Class attributes: `computed_key` (the index's count of images through the model) and
    `layout` (a module with `index_name`, `read_index` and `write_index`, as
    `pipeline.batch.layout`); `batch_size` (32 unless the subclass sets its own).

    Args:
        run_dir: the folder this run writes into.
        base: `{"dir": ..., "num_shards": ...}` of a complete output of the same config whose
            results are reused for unchanged images, or None. Defaults to `None`.
        links: the data's `LinkPolicy`: a listed path it refuses is skipped with its reason,
            never read; None: every path is read. Defaults to `None`.
    """

    computed_key = "computed"
    layout = layout
    batch_size = 32

    def __init__(self, run_dir, *, base=None, links=None):
        self._run_dir, self._base, self._links = run_dir, base, links
        self._model_thread = None

    def setup(self):
        self.load_model()

    def teardown(self):
        if self._model_thread is not None:
            self._model_thread.shutdown()
            self._model_thread = None

    def flush(self, state, *, final):
        """Sends what is queued to the model thread in padded batches of exactly `batch_size`
        (all of it when final, and then waits for every result)."""
        size = self.batch_size
        while len(state.pending) >= (1 if final else size):
            batch, state.pending[:] = state.pending[:size], state.pending[size:]
            images = np.zeros((size, *np.shape(batch[0][0])), np.float32)
            for row, (image, _) in enumerate(batch):
                images[row] = image
            self._collect(state)
            if self._model_thread is None:
                self._model_thread = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="model")
            items = [item for _, item in batch]
            state.in_flight = (items, self._model_thread.submit(self.run_batch, images, items))
        if final:
            self._collect(state)

    def _collect(self, state):
        """The results of the batch on the model thread, if any (waits for it)."""
        if state.in_flight is not None:
            items, outputs = state.in_flight
            state.in_flight = None
            self.collect(items, outputs.result(), state)

    def process(self, element):
        shard, items = element
        state = ShardState(shard, items[0][0], len(items))
        items, refused = refused_items(items)
        for ref, reason in refused:
            state.skip(ref, ValueError(reason))
        reusable = self._reusable_base_entries([pair[0].id for _, pair in items], state)
        to_reuse, last = {}, time.monotonic()
        load = functools.partial(self._load, reusable=reusable)
        for done, (ref, data, loaded) in enumerate(prefetch(load, items), start=1):
            if isinstance(loaded, Exception):
                state.skip(ref, loaded)
            elif loaded is _REUSE:
                # Bytes that travelled with the ref (TFDS) are kept in case the copy fails.
                to_reuse[ref.id] = (ref, reusable[ref.id]["shard"], None if ref.path else data)
            else:
                self._add(ref, loaded, state)
            self.flush(state, final=False)
            if time.monotonic() - last >= _PROGRESS_SECONDS:
                self._progress(shard, len(refused) + done)
                last = time.monotonic()
        self._reuse(to_reuse, state)
        self.flush(state, final=True)
        self._write(state)
        self._progress(shard, state.listed)
        yield {"shard": shard, "listed": state.listed, self.computed_key: state.computed,
               "reused": state.reused, "skipped": len(state.skipped)}

    def _load(self, item, *, reusable):
        """Reads, digests and prepares one image (on a decode thread).

        Returns:
            `(ref with its digest, bytes, loaded)`: loaded is what `prepare` returned, `_REUSE`
            when a base output holds the image's results, or the exception that skips it.
        """
        _, (ref, data) = item
        try:
            if data is None:
                if self._links is not None:
                    self._links.check(ref.path)
                data = read_bytes(ref.path)
        except (OSError, tf.errors.OpError) as err:
            return ref, None, err
        ref = dataclasses.replace(ref, digest=hashlib.sha256(data).hexdigest())
        if _same(reusable.get(ref.id), ref):
            return ref, data, _REUSE
        try:
            return ref, data, self.prepare(ref, data)
        except ImageError as err:
            return ref, data, err

    def _add(self, ref, prepared, state):
        state.add_entry(ref)
        state.computed += 1
        self.add(ref, prepared, state)

    def _reusable_base_entries(self, ids, state):
        """`{id: base index entry (with its base shard)}` for this shard's ids, from the base.

        A base shard is used only when its file matches the sha256 its index recorded; a
        damaged one is noted in `state.base_faults` and its images are run again.
        """
        if not self._base:
            return {}
        wanted, base_n = set(ids), self._base["num_shards"]
        found = {}
        for base_shard in sorted({layout.shard_of(i, base_n) for i in wanted}):
            name = self.layout.index_name(base_shard, base_n)
            try:
                index = self.layout.read_index(self.base_path(name)) or {"entries": []}
            except (ValueError, OSError, tf.errors.OpError) as err:
                state.base_faults.append(f"{name}: unreadable ({reason_of(err)})")
                continue
            fault = self._base_fault(index)
            if fault:
                state.base_faults.append(fault)
                continue
            found.update((entry["id"], {**entry, "shard": base_shard})
                         for entry in index["entries"] if entry["id"] in wanted)
        return found

    def _base_fault(self, index):
        """Why a base shard's file cannot be trusted, or None (it matches its sha256)."""
        if not index.get("file"):
            return None
        try:
            if file_sha256(self.base_path(index["file"])) == index.get("sha256"):
                return None
        except (OSError, tf.errors.OpError) as err:
            return f"{index['file']}: unreadable ({reason_of(err)})"
        return f"{index['file']}: its content does not match the sha256 in its index"

    def _reuse(self, to_reuse, state):
        """Copies the base's results of unchanged images; any not found there are run again."""
        copied = self.copy_reused({i: (ref, shard) for i, (ref, shard, _) in to_reuse.items()},
                                  state) if to_reuse else set()
        for example_id, (ref, _, data) in sorted(to_reuse.items()):
            if example_id in copied:
                state.add_entry(ref)
                state.reused += 1
                continue
            _, _, loaded = self._load((0, (ref, data)), reusable={})
            if isinstance(loaded, Exception):
                state.skip(ref, loaded)
            else:
                self._add(ref, loaded, state)
                self.flush(state, final=False)

    def _write(self, state):
        written = self.write(state)
        index = {
            "shard": state.shard, "num_shards": state.num_shards, "listed": state.listed,
            "entries": state.entries, "skipped": state.skipped, "no_face": state.no_face,
            self.computed_key: state.computed, "reused": state.reused,
            "fingerprint": state.fingerprint(), "base_faults": state.base_faults,
            **state.counters, **written,
            **self.index_extras(state)}
        self.layout.write_index(posixpath.join(
            self._run_dir, self.layout.index_name(state.shard, state.num_shards)), index)

    def _progress(self, shard, done):
        path = posixpath.join(self._run_dir, PROGRESS_DIR, f"shard-{shard:05d}.json")
        with tf.io.gfile.GFile(path, "w") as handle:
            handle.write(json.dumps({"done": done}))

    def base_path(self, name):
        """A file of the base output."""
        return posixpath.join(self._base["dir"], name)

    def run_path(self, name):
        """A file of this run."""
        return posixpath.join(self._run_dir, name)

    # What a step does; see the class docstring.
    def load_model(self):
        raise NotImplementedError

    def prepare(self, ref, data):
        raise NotImplementedError

    def add(self, ref, prepared, state):
        raise NotImplementedError

    def run_batch(self, images, items):
        raise NotImplementedError

    def collect(self, items, outputs, state):
        raise NotImplementedError

    def copy_reused(self, to_reuse, state):
        raise NotImplementedError

    def write(self, state):
        raise NotImplementedError

    def index_extras(self, state):
        return {}


def _same(base_entry, ref):
    return bool(base_entry) and all(base_entry[key] == getattr(ref, key)
                                    for key in ("digest", "label_name", "split"))


def _assign_shards(element, run_dir, num_shards):
    """`(0, every pair)` -> `(shard, (shard count, pair))` for each pair; records the count."""
    _, pairs = element
    pairs = list(pairs)
    num_shards = num_shards or layout.auto_num_shards(len(pairs))
    with tf.io.gfile.GFile(posixpath.join(run_dir, LISTED_FILE), "w") as handle:
        handle.write(json.dumps({"listed": len(pairs), "num_shards": num_shards}))
    for pair in pairs:
        yield layout.shard_of(pair[0].id, num_shards), (num_shards, pair)


class ShardedPass(beam.PTransform):
    """`(ref, bytes or None)` pairs -> shards and indexes written into `run_dir` by `shard_fn`.

    The listing is gathered once (`GatherListing`, a `GroupByKey` on one key) to count it and
    fix the shard count, rather than through a side input: every runner executes a straight
    chain of `ParDo`s and `GroupByKey`s correctly (Beam 2.77's DaskRunner miscounts a side
    input's branch). Only references pass through it, except for TFDS, whose bytes travel with
    their references.

    Args:
        shard_fn: the step's `ShardFn`.
        step: the step's label (`EmbedShard`, `PredictShard`).
        run_dir: the folder to write into.
        num_shards: the shard count; 0 picks one shard per `layout.IMAGES_PER_SHARD` listed
            images. Defaults to `0`.
    """

    def __init__(self, shard_fn, *, step, run_dir, num_shards=0):
        super().__init__()
        self._shard_fn, self._step = shard_fn, step
        self._run_dir, self._num_shards = run_dir, num_shards

    def expand(self, pairs):
        tf.io.gfile.makedirs(posixpath.join(self._run_dir, PROGRESS_DIR))
        return (pairs
                | "KeyAll" >> beam.Map(lambda pair: (0, pair))
                | "GatherListing" >> beam.GroupByKey()
                | "AssignShards" >> beam.FlatMap(_assign_shards, self._run_dir, self._num_shards)
                | "GroupShards" >> beam.GroupByKey()
                | self._step >> beam.ParDo(self._shard_fn))
