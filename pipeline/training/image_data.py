"""The fine-tune job's images: the cache's split (of a folder, a list, a glob or a TFDS data
set), decoded and resized exactly as the embed job did, optionally decoded once and read back as
pixels in later epochs (`pixel_cache`).
"""
import dataclasses
import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from pipeline.data.faces import crop_to_box, face_box
from pipeline.data.images import decode_image
from pipeline.data.fingerprint import combine_hashes, entry_hash
from pipeline.data.sources import TFDS_PREFIX, open_source
from pipeline.features.config import FORMAT_VERSION
from pipeline.files import write_bytes_atomic

__all__ = ["MEMORY_BUDGET", "face_boxes", "image_dataset", "pixel_cache_key", "split_refs"]

#: A split whose resized pixels take at most this many bytes is cached in memory, else on disk.
MEMORY_BUDGET = 1 << 30


_NO_BOX = (-1, -1, -1, -1)


def _read(path):
    with tf.io.gfile.GFile(path.decode(), "rb") as handle:
        return decode_image(handle.read())


def _find_box(path):
    return np.array(face_box(_read(path)) or _NO_BOX, np.int32)


def _decode_path(path, box):
    return crop_to_box(_read(path), None if box[0] < 0 else box)


def face_boxes(paths):
    """The face box of each image, `(top, left, bottom, right)` or -1s where none is found.

    The detector runs once per image, in parallel, so that training epochs only crop.
    """
    data = tf.data.Dataset.from_tensor_slices(list(paths)).map(
        lambda path: tf.numpy_function(_find_box, [path], tf.int32),
        num_parallel_calls=tf.data.AUTOTUNE)
    return np.stack(list(data.as_numpy_iterator())) if paths else np.zeros((0, 4), np.int32)


def image_dataset(refs, image_size, *, batch_size, shuffle_seed=None, face_crop=False,
                  pixel_cache=None, memory_budget=MEMORY_BUDGET):
    """A `tf.data.Dataset` of (resized image, label) batches from `ExampleRef`s.

    Decoding is `pipeline.data.images.decode_image` (then the crop of
    `pipeline.data.faces.crop_face` with `face_crop`, its boxes found once by `face_boxes`) and
    resizing is bilinear without antialias, as in the embed job, so the pixels are the cached
    ones. With `pixel_cache`, the first pass decodes and later passes read the resized float32
    pixels back (`tf.data.Dataset.cache`), before the shuffle: the batches are bit for bit those
    decoded every pass, in the same order; augmentation is the model's, so still fresh per epoch.

    Args:
        refs: the `ExampleRef`s, in the order of an unshuffled pass.
        image_size: the side in pixels.
        batch_size: images per batch.
        shuffle_seed: reshuffle every pass with this seed; None keeps `refs` order. Defaults to
            None.
        face_crop: crop the largest face first. Defaults to `False`.
        pixel_cache: None (decode every pass) or a folder: the pixels are kept in memory when
            they take at most `memory_budget` bytes, else in a file of that folder named by
            `pixel_cache_key` (the caller removes the folder). Defaults to None.
        memory_budget: bytes. Defaults to `MEMORY_BUDGET` (1 GiB).
    """
    paths = [ref.path for ref in refs]
    labels = np.array([ref.label for ref in refs], np.int64)
    boxes = face_boxes(paths) if face_crop else np.full((len(refs), 4), -1, np.int32)

    def load(path, label, box):
        image = tf.numpy_function(_decode_path, [path, box], tf.uint8)
        image.set_shape([None, None, 3])
        return tf.image.resize(image, (image_size, image_size)), label

    data = tf.data.Dataset.from_tensor_slices((paths, labels, boxes))
    if pixel_cache is not None:
        data = data.map(load, num_parallel_calls=tf.data.AUTOTUNE).cache(
            _cache_file(pixel_cache, refs, image_size, face_crop, memory_budget))
    if shuffle_seed is not None:
        data = data.shuffle(len(refs), seed=shuffle_seed, reshuffle_each_iteration=True)
    if pixel_cache is None:
        data = data.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def pixel_cache_key(refs, image_size, face_crop):
    """A key of the decoded pixels: it changes with the images (id, path, digest, and the file's
    size and modification time), the size and the crop."""
    what = {"images": [[ref.id, ref.path, ref.digest, *_stat(ref.path)] for ref in refs],
            "image_size": int(image_size), "face_crop": bool(face_crop)}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _stat(path):
    stat = tf.io.gfile.stat(path)
    return [stat.length, stat.mtime_nsec]


def _cache_file(folder, refs, image_size, face_crop, memory_budget):
    """`""` (in memory) for pixels within `memory_budget` bytes, else a file under `folder`."""
    if len(refs) * image_size * image_size * 3 * 4 <= memory_budget:
        return ""
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"pixels-{pixel_cache_key(refs, image_size, face_crop)}")


def split_refs(manifest, *, image_dir=None):
    """The cache's train and validation `ExampleRef`s (skipped files left out), in id order.

    The source is opened as the embed job opened it, with the same split assignment: a class
    folder, a list or a glob (the manifest's `source.location`; `root` in older caches) is
    listed; a TFDS data set (`tfds:NAME`) is read by `TfdsSource` and its train and
    validation images are written as files under `image_dir` (their bytes travel with the data
    set, not in files), named by their sha256. Either way, the data fingerprint of what was read
    must be the cache's.

    Args:
        manifest: the cache's manifest.
        image_dir: where a TFDS cache's images are written (the caller removes it); required for
            one. Defaults to None.

    Raises:
        ValueError: an older cache, a TFDS cache without `image_dir`, or data whose content
            changed since the cache was made.
    """
    source_info, config = manifest["source"], manifest["config"]
    location = source_info.get("location") or source_info.get("root")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"cache {manifest['cache_key']} was made by an older embed job (format "
                         f"{manifest.get('format_version')}, now {FORMAT_VERSION}); run "
                         "`python -m jobs.embed` again")
    if config["data"].startswith(TFDS_PREFIX):
        refs, fingerprint = _tfds_refs(manifest, image_dir)
    elif location:
        source = open_source(location, val_fraction=config["val_fraction"], seed=config["seed"],
                             follow_links=config.get("follow_links", "any"))
        refs = source.refs()
        fingerprint = source.fingerprint(refs)
    else:
        raise ValueError(f"fine-tuning needs a cache of image files or of TFDS; "
                         f"{config['data']!r} is neither")
    if fingerprint != source_info["fingerprint"]:
        raise ValueError(f"data {location or config['data']!r} changed since "
                         f"cache {manifest['cache_key']} was made; run `python -m jobs.embed` "
                         "again")
    skipped = {item["id"] for item in manifest["skipped"]}
    kept = sorted((r for r in refs if r.id not in skipped), key=lambda r: r.id)
    return ([r for r in kept if r.split == "train"], [r for r in kept if r.split == "val"])


def _tfds_refs(manifest, image_dir):
    """Every train and validation ref of a TFDS cache's data set, with its image written under
    `image_dir`, and the data fingerprint of every example read (test ones too, as embedded)."""
    config = manifest["config"]
    if image_dir is None:
        raise ValueError(f"cache {manifest['cache_key']}: its images are in TFDS "
                         f"{config['data']!r}, not in files: pass a folder to write them to")
    source = open_source(config["data"], val_fraction=config["val_fraction"], seed=config["seed"])
    os.makedirs(image_dir, exist_ok=True)
    refs, hashes = [], []
    for task in source.tasks:
        for ref, data in source.examples(task):
            digest = hashlib.sha256(data).hexdigest()
            hashes.append(entry_hash(ref.id, ref.label_name, digest))
            if ref.split in ("train", "val"):
                path = os.path.join(image_dir, digest)
                if not os.path.exists(path):
                    write_bytes_atomic(path, data)
                refs.append(dataclasses.replace(ref, path=path, digest=digest))
    return refs, combine_hashes(hashes)
