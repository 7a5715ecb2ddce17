"""The predict job's shard step: the model over every image, written as one Parquet file a shard.

    inputs.list_examples()     listing on the workers: (ref, bytes or None)
      -> ShardedPass           the pass every batch job shares (`pipeline.batch.spine`)
         -> PredictShard       read + digest, reuse the rows of unchanged images from an earlier
                               output, prepare as the model was validated, predict in padded
                               batches (model loaded once per worker), write
                               `predictions-SSSSS-of-NNNNN.parquet` and its index

A shard's Parquet file has one row per image, sorted by id (`COLUMNS`); its index adds what the
driver's summary and page need without reading the rows: the count per predicted class, a
histogram of the predicted class's probability, and the lowest-confidence images with a
thumbnail each.
"""
import base64
import bisect
import hashlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from pipeline.batch import layout
from pipeline.batch.spine import ShardedPass, ShardFn
from pipeline.data.images import decode_image, jpeg_thumbnail, prepare_decoded
from pipeline.data.sources import read_bytes
from pipeline.files import write_bytes_atomic
from pipeline.prediction.models import load_predictor
from pipeline.reports.summaries import shard_summary

__all__ = ["COLUMNS", "HISTOGRAM_BINS", "LOWEST_PER_SHARD", "MOST_WRONG_PER_SHARD", "shard_name",
           "read_rows",
           "PredictShardFn", "PredictImages"]

SHARD_PREFIX = "predictions"
#: The Parquet columns, in order (`embedding` only with `with_embeddings`).
COLUMNS = ("id", "path", "digest", "label", "label_index", "probability", "top_k_labels",
           "top_k_probabilities", "probabilities", "true_label", "face_found", "width", "height",
           "embedding")
#: Bins of the confidence histogram over [0, 1], and the lowest-confidence images per shard.
HISTOGRAM_BINS, LOWEST_PER_SHARD, MOST_WRONG_PER_SHARD = 20, 48, 50
_THUMB_SIDE = 128


def shard_name(index, num_shards):
    """`predictions-SSSSS-of-NNNNN.parquet`."""
    return layout.shard_file(SHARD_PREFIX, "parquet", index, num_shards)


def _schema(with_embeddings):
    fields = [("id", pa.string()), ("path", pa.string()), ("digest", pa.string()),
              ("label", pa.string()), ("label_index", pa.int32()),
              ("probability", pa.float32()), ("top_k_labels", pa.list_(pa.string())),
              ("top_k_probabilities", pa.list_(pa.float32())),
              ("probabilities", pa.list_(pa.float32())), ("true_label", pa.string()),
              ("face_found", pa.bool_()), ("width", pa.int32()), ("height", pa.int32())]
    if with_embeddings:
        fields.append(("embedding", pa.list_(pa.float32())))
    return pa.schema(fields)


def read_rows(path, ids=None):
    """The rows of a shard's Parquet file as dicts (only `ids`, where given)."""
    with tf.io.gfile.GFile(path, "rb") as handle:
        table = pq.read_table(pa.BufferReader(handle.read()))
    rows = table.to_pylist()
    return rows if ids is None else [row for row in rows if row["id"] in ids]


def _thumbnail(data):
    """A small JPEG of encoded image bytes, base64, or None where it cannot be decoded."""
    jpeg = jpeg_thumbnail(data, side=_THUMB_SIDE, quality=80)
    return None if jpeg is None else base64.b64encode(jpeg).decode()


class PredictShardFn(ShardFn):
    """The predict job's shard step (`pipeline.batch.spine.ShardFn`).

    Batches are always padded to `batch_size`, so an image's prediction never depends on which
    images share its batch.

    Args:
        spec: the `ModelSpec` (`pipeline.prediction.models.open_model`).
        run_dir: the folder this run writes into.
        top_k: how many labels each row's top-k holds.
        with_embeddings: also write each image's pooled embedding.
        batch_size: images per forward pass.
        base: an earlier output of the same config whose rows are reused for unchanged images
            (see `ShardFn`). Defaults to `None`.
        cached_embeddings: a head takes the embeddings its cache holds for an image's content
            instead of running the backbone (`load_predictor`). Defaults to `False`.
        most_wrong: the most confident mistakes kept per shard, with thumbnails, where true
            labels are known. Defaults to `MOST_WRONG_PER_SHARD`.
    """

    computed_key = "predicted"

    def __init__(self, spec, *, run_dir, top_k, with_embeddings, batch_size, base=None,
                 cached_embeddings=False, most_wrong=MOST_WRONG_PER_SHARD, links=None):
        super().__init__(run_dir, base=base, links=links)
        self._spec, self._top_k, self._with_embeddings = spec, top_k, with_embeddings
        self.batch_size, self._cached_embeddings = batch_size, cached_embeddings
        self._most_wrong = most_wrong
        self._predictor = None

    def load_model(self):
        self._predictor = load_predictor(self._spec, with_embeddings=self._with_embeddings,
                                         cached_embeddings=self._cached_embeddings)

    def prepare(self, ref, data):
        decoded = decode_image(data)
        image, found = prepare_decoded(decoded, self._spec.image_size,
                                       face_crop=self._spec.face_crop)
        return image, found, decoded.shape[:2]

    def add(self, ref, prepared, state):
        image, face_found, size = prepared
        state.pending.append((image, (ref, face_found, size)))

    def run_batch(self, images, items):
        return self._predictor(images, [ref.digest for ref, _, _ in items])

    def collect(self, items, outputs, state):
        proba, embeddings, computed = outputs
        state.counters["embedded"] += computed
        for n, (ref, face_found, (height, width)) in enumerate(items):
            state.results.append(self._row(ref, proba[n], face_found, (width, height),
                                           None if embeddings is None else embeddings[n]))

    def _row(self, ref, proba, face_found, size, embedding):
        names = self._spec.class_names
        proba = np.asarray(proba, np.float32)
        order = np.argsort(-proba, kind="stable")[:self._top_k]
        row = {"id": ref.id, "path": ref.path, "digest": ref.digest,
               "label": names[int(order[0])], "label_index": int(order[0]),
               "probability": float(proba[order[0]]),
               "top_k_labels": [names[int(i)] for i in order],
               "top_k_probabilities": [float(proba[i]) for i in order],
               "probabilities": proba.tolist(), "true_label": ref.label_name or None,
               "face_found": face_found, "width": int(size[0]), "height": int(size[1])}
        if self._with_embeddings:
            row["embedding"] = np.asarray(embedding, np.float32).tolist()
        return row

    def copy_reused(self, to_reuse, state):
        base_n = self._base["num_shards"]
        copied = set()
        for base_shard in sorted({shard for _, shard in to_reuse.values()}):
            path = self.base_path(shard_name(base_shard, base_n))
            if not tf.io.gfile.exists(path):
                continue
            for row in read_rows(path, set(to_reuse)):
                ref = to_reuse[row["id"]][0]
                state.results.append({**row, "path": ref.path,
                                      "true_label": ref.label_name or None})
                copied.add(row["id"])
        return copied

    def write(self, state):
        state.results.sort(key=lambda row: row["id"])
        schema = _schema(self._with_embeddings)
        table = pa.Table.from_pylist(state.results, schema=schema)
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        data = buffer.getvalue().to_pybytes()
        name = shard_name(state.shard, state.num_shards)
        write_bytes_atomic(self.run_path(name), data)
        return {"file": name, "records": len(state.results),
                "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    def index_extras(self, state):
        names = self._spec.class_names
        per_class = dict.fromkeys(names, 0)
        histogram = [0] * HISTOGRAM_BINS
        lowest = []  # (probability, id, row), the LOWEST_PER_SHARD smallest
        for row in state.results:
            per_class[row["label"]] += 1
            histogram[min(int(row["probability"] * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
            key = (row["probability"], row["id"])
            if len(lowest) < LOWEST_PER_SHARD or key < lowest[-1][:2]:
                bisect.insort(lowest, (*key, row))
                del lowest[LOWEST_PER_SHARD:]
        return {"per_class": per_class, "histogram": histogram,
                "lowest": [{**self._tile(row), "label": row["label"],
                            "probability": row["probability"],
                            "true_label": row["true_label"] or "",
                            "top_k": [list(pair) for pair in zip(row["top_k_labels"],
                                                                  row["top_k_probabilities"])]}
                           for _, _, row in lowest],
                "labelled": sum(row["true_label"] is not None for row in state.results),
                "evaluation": self._evaluation(state.results)}

    def _evaluation(self, rows):
        """The shard's evaluation summary over rows whose true label is a model class, and its
        most confident mistakes; None where no row has one."""
        names = self._spec.class_names
        known = [row for row in rows if row["true_label"] in names]
        if not known:
            return None
        y_true = np.array([names.index(row["true_label"]) for row in known])
        proba = np.array([row["probabilities"] for row in known], np.float64)
        wrong = sorted((row for row in known if row["label"] != row["true_label"]),
                       key=lambda row: (-row["probability"], row["id"]))[:self._most_wrong]
        return {"summary": shard_summary(y_true, proba),
                "most_wrong": [{**self._tile(row), "true": row["true_label"],
                                "predicted": row["label"], "confidence": row["probability"]}
                               for row in wrong]}

    @staticmethod
    def _tile(row):
        """`{id, path, thumbnail}` of a row: a small JPEG of its file, base64, or None."""
        try:
            data = read_bytes(row["path"]) if row["path"] else None
        except (OSError, tf.errors.OpError):
            data = None
        return {"id": row["id"], "path": row["path"], "thumbnail": data and _thumbnail(data)}


class PredictImages(beam.PTransform):
    """`(ref, bytes or None)` pairs -> prediction shards and indexes written into `run_dir`: the
    shared `ShardedPass` with `PredictShardFn` as its step.

    Args:
        spec, top_k, with_embeddings, batch_size, base, cached_embeddings, most_wrong, links: as
            for `PredictShardFn` (and `ShardFn`).
        run_dir: the folder to write into.
        num_shards: the shard count (0: one per `layout.IMAGES_PER_SHARD` images).
    """

    def __init__(self, spec, *, run_dir, top_k, with_embeddings, batch_size, num_shards=0,
                 base=None, cached_embeddings=False, most_wrong=MOST_WRONG_PER_SHARD,
                 links=None):
        super().__init__()
        self._fn = PredictShardFn(spec, run_dir=run_dir, top_k=top_k,
                                  with_embeddings=with_embeddings, batch_size=batch_size,
                                  base=base, cached_embeddings=cached_embeddings,
                                  most_wrong=most_wrong, links=links)
        self._run_dir, self._num_shards = run_dir, num_shards

    def expand(self, pairs):
        return pairs | "ShardedPass" >> ShardedPass(self._fn, step="PredictShard",
                                                    run_dir=self._run_dir,
                                                    num_shards=self._num_shards)
