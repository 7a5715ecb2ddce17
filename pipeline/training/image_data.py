"""The fine-tune job's images: the cache's split, decoded and resized exactly as the embed job
did."""
import numpy as np
import tensorflow as tf

from pipeline.data.faces import crop_to_box, face_box
from pipeline.data.images import decode_image
from pipeline.data.sources import FolderSource
from pipeline.features.config import FORMAT_VERSION

__all__ = ["face_boxes", "image_dataset", "split_refs"]


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


def image_dataset(refs, image_size, *, batch_size, shuffle_seed=None, face_crop=False):
    """A `tf.data.Dataset` of (resized image, label) batches from `ExampleRef`s.

    Decoding is `pipeline.data.images.decode_image` (then the crop of
    `pipeline.data.faces.crop_face` with `face_crop`, its boxes found once by `face_boxes`) and
    resizing is bilinear without antialias, as in the embed job, so the pixels are the cached
    ones.
    """
    paths = [ref.path for ref in refs]
    labels = np.array([ref.label for ref in refs], np.int64)
    boxes = face_boxes(paths) if face_crop else np.full((len(refs), 4), -1, np.int32)
    data = tf.data.Dataset.from_tensor_slices((paths, labels, boxes))
    if shuffle_seed is not None:
        data = data.shuffle(len(refs), seed=shuffle_seed, reshuffle_each_iteration=True)

    def load(path, label, box):
        image = tf.numpy_function(_decode_path, [path, box], tf.uint8)
        image.set_shape([None, None, 3])
        return tf.image.resize(image, (image_size, image_size)), label

    return data.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(
        tf.data.AUTOTUNE)


def split_refs(manifest):
    """The cache's train and validation `ExampleRef`s (skipped files left out), in id order.

    Raises:
        ValueError: a TFDS cache, or a folder whose content changed since the cache was made.
    """
    source_info, config = manifest["source"], manifest["config"]
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"cache {manifest['cache_key']} was made by an older embed job (format "
                         f"{manifest.get('format_version')}, now {FORMAT_VERSION}); run "
                         "`python -m jobs.embed` again")
    if not source_info.get("root"):
        raise ValueError(f"fine-tuning needs a class-folder cache; {config['data']!r} is not one")
    source = FolderSource(source_info["root"], val_fraction=config["val_fraction"],
                          seed=config["seed"], follow_links=config.get("follow_links", "any"))
    refs = source.refs()
    if source.fingerprint(refs) != source_info["fingerprint"]:
        raise ValueError(f"data {source_info['root']!r} changed since cache "
                         f"{manifest['cache_key']} was made; run `python -m jobs.embed` again")
    skipped = {item["id"] for item in manifest["skipped"]}
    kept = sorted((r for r in refs if r.id not in skipped), key=lambda r: r.id)
    return ([r for r in kept if r.split == "train"], [r for r in kept if r.split == "val"])
