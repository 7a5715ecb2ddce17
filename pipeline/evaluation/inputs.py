"""What an evaluation scores: a class folder, a TFDS split or a cache's split, labelled with the
model's classes (and refused in one line where the data has classes the model does not know).
"""
import csv
import io
import os
import posixpath
import re

import tensorflow as tf

from pipeline.data.lists import source_paths
from pipeline.data.sources import FolderSource
from pipeline.features import cache
from pipeline.files import write_bytes_atomic
from pipeline.prediction.inputs import ListInputs, TfdsInputs, open_inputs
from pipeline.reports.runs import display_name

__all__ = ["eval_inputs", "data_name"]


def _label_map(found, known, data):
    unknown = sorted(set(found) - set(known))
    if unknown:
        raise ValueError(f"data {data!r}: classes {unknown} are not among the model's "
                         f"({', '.join(known)})")
    return {name: known.index(name) for name in found}


def eval_inputs(data, class_names, predictions_dir, *, follow_links="no"):
    """What to score: the inputs of `data`, labelled with the model's classes.

    `data` is a class folder (every image), `tfds:NAME[:SPLIT]` (default split `test`), or a
    cache folder, optionally `DIR:SPLIT` (default `val`), whose split's images are listed into
    `<predictions_dir>/lists/` for the pass to read.

    Returns:
        `(inputs, fingerprint suffix)`: the suffix tells splits of one data set apart.

    Raises:
        ValueError: classes the model does not know, or data that is none of these.
    """
    if data.startswith("tfds:"):
        name, _, split = data[len("tfds:"):].partition(":")
        inputs = TfdsInputs(name, split or "test", class_names=class_names)
        _label_map(inputs.source.class_names, class_names, data)
        return inputs, f":{split or 'test'}"
    root, _, split = data.rpartition(":") if re.search(r":(train|val|test)$", data) else (
        data, "", "")
    if os.path.isfile(os.path.join(root, cache.MANIFEST)):
        return _cache_split_inputs(root, split or "val", class_names, predictions_dir, data), (
            f":{split or 'val'}")
    _label_map(FolderSource(data, val_fraction=0.0, follow_links=follow_links).class_names,
               class_names, data)
    return open_inputs(data, class_names, labels_from_folders=True,
                       follow_links=follow_links), ""


def _cache_split_inputs(root, split, class_names, predictions_dir, data):
    manifest = cache.read_manifest(root)
    _label_map(manifest["class_names"], class_names, data)
    refs = cache.load_split(root, split, clean_only=True)
    ids = refs.ids.tolist()
    paths = source_paths(manifest["source"], ids) or ids
    listing = posixpath.join(predictions_dir, "lists", f"{manifest['cache_key']}-{split}.csv")
    tf.io.gfile.makedirs(posixpath.dirname(listing))
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["id", "path", "label"])
    writer.writerows([i, path, manifest["class_names"][label]]
                     for i, path, label in zip(ids, paths, refs.labels.tolist()))
    write_bytes_atomic(listing, text.getvalue().encode())
    return ListInputs(listing, class_names=class_names,
                      follow_links=manifest["config"].get("follow_links", "any"))


def data_name(data):
    """The data set's name for titles; a cache folder is named after the folder it embedded."""
    root, _, split = data.rpartition(":") if re.search(r":(train|val|test)$", data) else (
        data, "", "")
    if os.path.isfile(os.path.join(root, cache.MANIFEST)):
        source = cache.read_manifest(root)["source"]
        name = display_name(source.get("root") or source.get("data") or root)
        return f"{name} ({split or 'val'})"
    return display_name(data)
