"""The models a batch job applies: a fine-tuned `model.keras`, a head with its cache's backbone,
or a SavedModel folder from `jobs.export`, each with the preparation it was validated with.

`open_model(path)` runs in the driver: it recognises the kind, reads the class names and how
images must be prepared (input size, face crop, mirror averaging), and digests the model's files,
refusing anything else in one line. The `ModelSpec` it returns is small and travels to the
workers, which call `load_predictor(spec)` once per process: images in, probabilities (and,
where the model has them, pooled embeddings) out.
"""
import dataclasses
import hashlib
import json
import posixpath
import threading

import keras
import numpy as np
import tensorflow as tf

from pipeline.features import cache
from pipeline.features.backbones import manifest_weights
from pipeline.features.embed import shared_embedder
from pipeline.files import file_sha256
from pipeline.publish import verify_published
from pipeline.training.end_to_end import MODEL_FILE, MODEL_INFO, load_finetuned
from pipeline.training.heads import load_head, logits_to_proba
from pipeline.training.ensemble import trained_model
from pipeline.training.tta import has_flip_tta

__all__ = ["ModelSpec", "open_model", "load_predictor", "KINDS", "SAVED_MODEL", "LABELS",
           "FACE_CROP", "EXPORT_INFO"]

#: What `open_model` recognises.
KINDS = ("finetuned", "head", "saved_model")
#: The files of a `jobs.export` folder that a batch job reads (`pipeline.evaluation.export`
#: writes them).
SAVED_MODEL, LABELS, FACE_CROP, EXPORT_INFO = ("saved_model", "labels.txt", "face_crop.json",
                                               "export.json")
_PREDICTORS, _LOCK = {}, threading.Lock()


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model as the driver found it.

    Attributes:
        kind: one of `KINDS`.
        path: the model's file or folder.
        class_names: the model's classes, in the order of its probabilities.
        image_size: the input side in pixels.
        face_crop: whether images are cropped to the largest face first.
        mirror: whether the model averages over the image and its mirror (it does it itself).
        digest: sha256 of the model's files (and, for a head, its backbone's weights).
        has_embeddings: whether the model can return pooled embeddings.
        cache_dir: a head's feature cache, or None.
    """

    kind: str
    path: str
    class_names: tuple
    image_size: int
    face_crop: bool
    mirror: bool
    digest: str
    has_embeddings: bool
    cache_dir: str | None = None

    def preparation(self):
        """How images are prepared for this model (part of the prediction key)."""
        return {"image_size": self.image_size, "face_crop": self.face_crop,
                "mirror": self.mirror, "decode": "pipeline.data.images.prepare_image"}


def _digest_files(paths, *extra):
    """sha256 of each file's name and content, then of each of `extra` as text."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(posixpath.basename(path).encode() + b"\0")
        file_sha256(path, digest=digest)
    for value in extra:
        digest.update(str(value).encode() + b"\0")
    return digest.hexdigest()


def _tree_files(folder):
    return sorted(posixpath.join(root, name) for root, _, names in tf.io.gfile.walk(folder)
                  for name in names)


def _read_json(path):
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def _open_finetuned(path):
    model, info = load_finetuned(path)  # read once here: refuse a broken file before any work
    return ModelSpec("finetuned", path, tuple(info["class_names"]), int(info["image_size"]),
                     bool(info["embed_config"].get("face_crop")), has_flip_tta(model),
                     _digest_files([path, posixpath.join(posixpath.dirname(path), MODEL_INFO)]),
                     has_embeddings=True)


def _open_head(folder):
    meta = _read_json(posixpath.join(folder, "head.json"))
    try:
        manifest = cache.read_manifest(meta["cache_dir"])
    except (KeyError, cache.CacheError) as err:
        raise ValueError(f"model {folder!r}: its cache cannot be read ({err})") from err
    config = manifest["config"]
    files = [posixpath.join(folder, name) for name in sorted(tf.io.gfile.listdir(folder))
             if name.startswith("head.")]
    return ModelSpec("head", folder, tuple(manifest["class_names"]), int(config["image_size"]),
                     bool(config.get("face_crop")), False,
                     _digest_files(files, manifest["weights_digest"], manifest["config_key"]),
                     has_embeddings=True, cache_dir=meta["cache_dir"])


def _open_saved_model(folder):
    saved = posixpath.join(folder, SAVED_MODEL)
    with tf.io.gfile.GFile(posixpath.join(folder, LABELS)) as handle:
        names = tuple(line.rstrip("\n") for line in handle if line.strip())
    info_path = posixpath.join(folder, EXPORT_INFO)
    info = _read_json(info_path) if tf.io.gfile.exists(info_path) else {}
    signature = tf.saved_model.load(saved).signatures["serving_images"]
    side = int(signature.structured_input_signature[1]["images"].shape[1])
    return ModelSpec("saved_model", folder, names, int(info.get("image_size", side)),
                     tf.io.gfile.exists(posixpath.join(folder, FACE_CROP)),
                     bool(info.get("mirror", False)), _digest_files(_tree_files(saved)),
                     has_embeddings=False)


def open_model(path):
    """Recognises and describes the model at `path` (in the driver).

    Every file is read through `tf.io.gfile`, so the model may be local or on any scheme it
    reads (`gs://`, ...). A local folder published whole (`pipeline.publish`) must hold every
    file its `published.json` lists, at its size (checked by each kind's loader): a damaged
    output is refused in one line.

    Args:
        path: a fine-tuned `model.keras` (or its folder), a head folder (`head.json`), or a
            folder written by `jobs.export` (`saved_model/` and `labels.txt`).

    Returns:
        A `ModelSpec`.

    Raises:
        ValueError: the path holds none of these, its files cannot be read, or a file of its
            published folder is missing or truncated.
    """
    path = path.rstrip("/") or path
    folder = tf.io.gfile.isdir(path)
    if folder and tf.io.gfile.exists(posixpath.join(path, MODEL_FILE)):
        path, folder = posixpath.join(path, MODEL_FILE), False
    if folder:  # a head or an export (a model.keras: `load_finetuned` checks its folder)
        verify_published(path, digests=False)
    try:
        if not folder and tf.io.gfile.exists(path):
            return _open_finetuned(path)
        if tf.io.gfile.exists(posixpath.join(path, "head.json")):
            return _open_head(path)
        if tf.io.gfile.isdir(posixpath.join(path, SAVED_MODEL)) and tf.io.gfile.exists(
                posixpath.join(path, LABELS)):
            return _open_saved_model(path)
    except (OSError, KeyError, json.JSONDecodeError, tf.errors.OpError) as err:
        raise ValueError(f"model {path!r}: cannot be read ({err})") from err
    raise ValueError(f"model {path!r}: expected a model.keras from jobs.finetune, a head folder "
                     "from jobs.train_head, or a folder from jobs.export")


class _Finetuned:
    def __init__(self, spec, with_embeddings, cached_embeddings=False):
        model, _ = load_finetuned(spec.path)
        outputs = [model.output]
        if with_embeddings:
            trained = trained_model(model)
            pooled = keras.Model(trained.inputs, trained.get_layer("head_dropout").input)
            outputs.append(pooled(model.inputs[0]))
        both = keras.Model(model.inputs, outputs)
        side, classes = spec.image_size, len(spec.class_names)
        self._forward = tf.function(lambda images: both(images, training=False),
                                    input_signature=[tf.TensorSpec((None, side, side, 3),
                                                                   tf.float32)])
        self._proba = lambda logits: logits_to_proba(logits, classes)

    def __call__(self, images, digests):
        out = self._forward(tf.convert_to_tensor(images, tf.float32))
        logits, pooled = (out[0], out[1]) if isinstance(out, (list, tuple)) else (out, None)
        return (self._proba(np.asarray(logits)), None if pooled is None else np.asarray(pooled),
                len(digests))


class _Head:
    """The cache's backbone, then the head; with `cached_embeddings`, the cache's own clean
    embeddings (by content digest) stand in for the backbone on images the cache holds."""

    def __init__(self, spec, with_embeddings, cached_embeddings=False):
        head = load_head(spec.path)
        manifest = cache.read_manifest(head.meta["cache_dir"])
        config = manifest["config"]
        self._embedder = shared_embedder(config["backbone"], image_size=config["image_size"],
                                         weights=manifest_weights(manifest),
                                         alpha=config["alpha"])
        self._proba = head.predict_proba
        if head.kind == "dense":  # a direct call: `Model.predict` costs more than the backbone
            forward = tf.function(lambda embeddings: head.model(embeddings, training=False))
            self._proba = lambda embeddings: logits_to_proba(forward(embeddings).numpy(),
                                                             head.num_classes)
        self._store = {}
        for split in manifest["counts"] if cached_embeddings else ():
            data = cache.load_split(head.meta["cache_dir"], split, clean_only=True, verify=False)
            self._store.update(zip(data.digests.tolist(), data.embeddings))

    def __call__(self, images, digests):
        missing = [i for i, digest in enumerate(digests) if digest not in self._store]
        if len(missing) == len(digests):
            embeddings = self._embedder(images)
        else:  # only the missing images, padded to the same batch (the same figures)
            batch = np.zeros_like(images)
            batch[:len(missing)] = images[missing]
            embeddings = np.zeros((len(images), self._embedder.embedding_dim), np.float32)
            embeddings[missing] = self._embedder(batch)[:len(missing)]
            for i, digest in enumerate(digests):
                if digest in self._store:
                    embeddings[i] = self._store[digest]
        return self._proba(embeddings), embeddings, len(missing)


class _SavedModel:
    def __init__(self, spec, with_embeddings, cached_embeddings=False):
        self._serve = tf.saved_model.load(posixpath.join(spec.path, SAVED_MODEL)).signatures[
            "serving_images"]

    def __call__(self, images, digests):
        out = self._serve(images=tf.convert_to_tensor(images, tf.float32))
        return out["probabilities"].numpy(), None, len(digests)


def load_predictor(spec, *, with_embeddings=False, cached_embeddings=False):
    """The process's one predictor for these arguments, built on first use.

    `predictor(images, digests) -> (proba, embeddings, computed)`: `images` are a float32 batch
    (n, size, size, 3) in [0, 255] as `prepare_image` makes them, whose first `len(digests)`
    rows are real (the rest padding); `proba` is float (n, classes); `embeddings` float32
    (n, dim), or None where the model has none; `computed` how many real rows went through a
    backbone (fewer than `len(digests)` only for a head with `cached_embeddings`, whose cache
    held some of the images).
    """
    key = (spec.digest, spec.path, with_embeddings, cached_embeddings)
    with _LOCK:
        if key not in _PREDICTORS:
            kind = {"finetuned": _Finetuned, "head": _Head, "saved_model": _SavedModel}
            _PREDICTORS[key] = kind[spec.kind](spec, with_embeddings, cached_embeddings)
        return _PREDICTORS[key]
