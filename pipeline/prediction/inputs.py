"""What a batch job reads: a folder in any layout, a glob, a list of paths, or a TFDS split.

`open_inputs(data, class_names)` runs in the driver and looks only at the top of the data (the
folder's first level, a list's header line, the TFDS split's metadata); its `list_examples()`
lists the images *inside the pipeline* as `(ref, bytes or None)` pairs, as
`pipeline.data.sources` does for the embed job, so neither the driver's work nor the graph grows
with the number of images.

    DIR                 every image below DIR, recursively; ids are paths relative to DIR
    'DIR/2026-*/*.jpg'  a glob (local or gs://); ids relative to the part before the first
                        wildcard
    LIST.txt|LIST.csv   one path or URI per line (a CSV: its `path` column, or its first, and
                        `label` and `id` columns where there are); ids are the `id` column or
                        the paths as written, relative ones resolved against the list's folder
    tfds:NAME[:SPLIT]   a TFDS split (default `test`); ids are TFDS ids

A true label is recorded where it is known: a TFDS label, a list's `label` column, or the first
folder level below DIR when every folder there is one of the model's classes (or always, with
`labels_from_folders=True`).
"""
import os
import posixpath

import apache_beam as beam
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems

from pipeline.data.images import IMAGE_EXTENSIONS
from pipeline.data.links import LinkPolicy
from pipeline.data.lists import LIST_EXTENSIONS, WILDCARD, ListFile, split_glob
from pipeline.data.sources import (TFDS_PREFIX, ExampleRef, TfdsSource, listed_images,
                                   match_folder, sub_folders)

__all__ = ["open_inputs", "FileInputs", "ListInputs", "TfdsInputs"]

#: How many files the driver looks at, at most, to check that a folder or glob holds an image.
_PEEK = 1000


def _ref(example_id, path, true_label, class_names, *, skip=""):
    label = class_names.index(true_label) if true_label in class_names else -1
    return ExampleRef(id=example_id, label=label, label_name=true_label or "", split="",
                      path=path, skip=skip)


class FileInputs:
    """Images matched below a root: a folder (every image, recursively) or a glob.

    Args:
        pattern: what to match (`ROOT/**` for a folder).
        root: ids are paths relative to it.
        labels: whether the first folder level below the root is the true label.
        class_names: the model's classes.
        links: the `LinkPolicy` of the root (a local folder is walked with it).
    """

    def __init__(self, pattern, root, *, labels, class_names, links):
        self.pattern, self.root, self.labels = pattern, root, labels
        self.class_names, self.links = list(class_names), links

    def _paths(self, limit=None):
        if self.pattern == posixpath.join(self.root, "**"):  # a folder
            return match_folder(self.root, self.links, limit)
        (result,) = FileSystems.match([self.pattern], limits=[limit])
        return sorted(meta.path for meta in result.metadata_list)

    def describe(self):
        return {"kind": "files", "pattern": self.pattern, "labels_from_folders": self.labels}

    def check_not_empty(self, data):
        """Refuses a pattern that matches no image, looking at no more than `_PEEK` files."""
        paths = self._paths(_PEEK)
        if len(paths) < _PEEK and not any(p.lower().endswith(IMAGE_EXTENSIONS) for p in paths):
            raise ValueError(f"data {data!r}: no images found ({', '.join(IMAGE_EXTENSIONS)})")

    def refs(self, pattern):
        for path, skip in listed_images(self._paths(), self.links):
            example_id = posixpath.relpath(path, self.root)
            true_label = example_id.split("/")[0] if self.labels and "/" in example_id else ""
            yield _ref(example_id, path, true_label, self.class_names, skip=skip)

    def list_examples(self):
        return "ListFiles" >> (beam.Create([self.pattern])
                               | "MatchFiles" >> beam.FlatMap(self.refs)
                               | "NoBytesYet" >> beam.Map(lambda ref: (ref, None)))


class ListInputs:
    """Paths or URIs listed in a text or CSV file, read on the workers.

    Args:
        path: the list file.
        class_names: the model's classes.
    """

    def __init__(self, path, *, class_names, follow_links="no"):
        self.path, self.class_names = path, list(class_names)
        self.file = ListFile(path)
        self.links = LinkPolicy(None, follow_links)  # a listed path that is a link

    def describe(self):
        return {"kind": "list", "path": self.path, "csv": self.file.is_csv}

    def parse(self, line):
        """`(ref, None)` for one line of the list (none for a blank line)."""
        fields = self.file.fields(line)
        if fields:
            example_id, full, true_label = self.file.entry(fields)
            yield _ref(example_id, full, true_label, self.class_names), None

    def list_examples(self):
        return "ListFiles" >> (self.file.read_lines()
                               | "ParseLines" >> beam.FlatMap(self.parse))


class TfdsInputs:
    """One split of a TFDS data set, read one file shard per task; bytes travel with refs.

    Args:
        name: the TFDS name.
        split: the TFDS split (`test`, `train`, `validation`).
        class_names: the model's classes.
    """

    links = None  # bytes travel with the refs

    def __init__(self, name, split, *, class_names):
        self.source = TfdsSource(name)
        self.split, self.class_names = split, list(class_names)
        self.tasks = [task for task in self.source.tasks if task[0] == split]
        if not self.tasks:
            raise ValueError(f"data tfds:{name}:{split}: no such split")

    def describe(self):
        return {"kind": "tfds", "name": self.source.name, "split": self.split}

    def examples(self, task):
        for ref, data in self.source.examples(task):
            yield _ref(ref.id, "", ref.label_name, self.class_names), data

    def list_examples(self):
        return "ReadTfds" >> (beam.Create(self.tasks)
                              | "ReadShard" >> beam.FlatMap(self.examples))


def _folder_labels(root, class_names):
    """Whether every first-level folder of `root` is one of the model's classes."""
    names = sub_folders(root)
    return bool(names) and set(names) <= set(class_names)


def open_inputs(data, class_names, *, labels_from_folders=None, follow_links="no"):
    """Opens what a batch job reads (see the module docstring).

    Args:
        data: a folder, a glob, a `.txt`/`.csv` list, or `tfds:NAME[:SPLIT]`.
        class_names: the model's classes (true labels are matched against them).
        labels_from_folders: take the first folder level as the true label: True, False, or
            None to decide by the folder names. Defaults to `None`.
        follow_links: which symbolic links are read (`pipeline.data.links`). Defaults to
            `"no"`.

    Raises:
        ValueError: no such folder or list, a glob without a folder to start from, or a
            folder or glob without images.
    """
    if data.startswith(TFDS_PREFIX):
        name, _, split = data[len(TFDS_PREFIX):].partition(":")
        return TfdsInputs(name, split or "test", class_names=class_names)
    if WILDCARD.search(data):
        pattern, root = split_glob(data)
        inputs = FileInputs(pattern, root, labels=bool(labels_from_folders),
                            class_names=class_names, links=LinkPolicy(root, follow_links))
        inputs.check_not_empty(data)
        return inputs
    if tf.io.gfile.isdir(data):
        root = data.rstrip("/") if "://" in data else os.path.abspath(data)
        labels = (_folder_labels(root, class_names) if labels_from_folders is None
                  else labels_from_folders)
        inputs = FileInputs(posixpath.join(root, "**"), root, labels=labels,
                            class_names=class_names, links=LinkPolicy(root, follow_links))
        inputs.check_not_empty(data)
        return inputs
    if data.lower().endswith(LIST_EXTENSIONS) and tf.io.gfile.exists(data):
        return ListInputs(data if "://" in data else os.path.abspath(data),
                          class_names=class_names, follow_links=follow_links)
    raise ValueError(f"data {data!r}: expected a folder, a glob, a .txt or .csv list of paths, "
                     "or tfds:NAME[:SPLIT]")
