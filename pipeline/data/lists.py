"""Labelled lists and globs as training sources, beside `pipeline.data.sources`' folders and TFDS.

    LIST.csv      a CSV whose header holds `path` and `label` columns (and optionally `id`): one
                  image a line; paths relative to the list's folder, absolute, or `gs://`; the
                  classes are the sorted distinct labels; ids are the `id` column, else the path
                  as written
    'DIR/*/...'   a glob (local or `gs://`): ids are paths relative to DIR, the part of the
                  pattern before its first wildcard, and the label is the first folder level
                  below DIR; a glob over a folder's contents gives the folder's ids and splits

Both have the interface the jobs use from `FolderSource` (`class_names`, `root`, `links`,
`location`, `sample_paths`, `refs`, `fingerprint`, `list_examples`) and split by the same id hash
(`assign_split`). Unlike a folder's, a list's or a glob's classes are known only once it is read:
the driver reads the whole list (text) or matches the whole glob (names; no image is read), and
the workers list the examples again inside the pipeline. `ListFile` (a list's columns) and
`split_glob` (a glob's root) are how `pipeline.prediction.inputs` reads lists and globs too.
"""
import csv
import hashlib
import io
import os
import posixpath
import re

import apache_beam as beam
import tensorflow as tf
from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems

from pipeline.data.fingerprint import combine_hashes, entry_hash
from pipeline.data.links import LinkPolicy
from pipeline.data.sources import (ExampleRef, assign_split, file_digest, listed_images,
                                   match_folder)

__all__ = ["LIST_EXTENSIONS", "WILDCARD", "ListFile", "ListSource", "GlobSource", "split_glob",
           "source_paths"]

LIST_EXTENSIONS = (".txt", ".csv")
#: What makes `--data` a glob.
WILDCARD = re.compile(r"[*?\[]")


class ListFile:
    """A list of images: a `.txt` (a path a line) or a `.csv` file whose header, where it holds a
    `path` column, names the columns (`path`, `label`, `id`); else the first column is the path.

    Args:
        path: the list (absolute or `gs://`); its first line is read here.
    """

    def __init__(self, path):
        self.path, self.folder = path, posixpath.dirname(path)
        with tf.io.gfile.GFile(path) as handle:
            first = handle.readline().strip()
        self.is_csv = path.lower().endswith(".csv")
        header = next(csv.reader([first])) if self.is_csv and first else []
        self.has_header = "path" in header
        self.path_column = header.index("path") if self.has_header else 0
        self.label_column = header.index("label") if "label" in header else None
        self.id_column = header.index("id") if "id" in header else None

    def fields(self, line):
        """The fields of one line of the list, or None for a blank line."""
        if not line.strip():
            return None
        return next(csv.reader(io.StringIO(line))) if self.is_csv else [line.strip()]

    def entry(self, fields):
        """`(id, path to read, label or "")` of one line's fields: a relative path is resolved
        against the list's folder; the id is the `id` column, else the path as written."""
        path = fields[self.path_column].strip()
        label = (fields[self.label_column].strip()
                 if self.label_column is not None and len(fields) > self.label_column else "")
        full = path if "://" in path or path.startswith("/") else posixpath.join(self.folder, path)
        example_id = fields[self.id_column].strip() if self.id_column is not None else path
        return example_id, full, label

    def lines(self):
        """`(line number, fields)` of every entry (not blank, not the header), read here."""
        with tf.io.gfile.GFile(self.path) as handle:
            for number, line in enumerate(handle, start=1):
                fields = None if number == 1 and self.has_header else self.fields(line)
                if fields:
                    yield number, fields

    def read_lines(self):
        """A `PTransform` reading the list's lines on the workers (the header left out)."""
        return beam.io.ReadFromText(self.path, skip_header_lines=int(self.has_header))


def split_glob(data):
    """`(pattern, root)` of a glob, both absolute (or `gs://`): the root is the folder before
    the pattern's first wildcard.

    Raises:
        ValueError: that folder does not exist.
    """
    root = data[:WILDCARD.search(data).start()].rpartition("/")[0]
    if not root or not tf.io.gfile.isdir(root):
        raise ValueError(f"data {data!r}: the folder the pattern starts from "
                         f"({root or '(none)'}) does not exist")
    if "://" in data:
        return data, root
    return os.path.abspath(data), os.path.abspath(root)


def _classes(data, labels):
    """The sorted class names; at least two."""
    names = sorted(labels)
    if len(names) < 2:
        raise ValueError(f"data {data!r}: expected at least two classes; got {len(names)} "
                         f"({', '.join(names) or 'none'})")
    return names


def _rank(seed, example_id):
    return hashlib.sha256(f"{seed}\x00{example_id}".encode()).digest()


class _Listed:
    """What lists and globs share: refs with their splits, the sample, the fingerprint."""

    def _ref(self, example_id, path, label_name, skip=""):
        return ExampleRef(id=example_id, label=self.class_names.index(label_name),
                          label_name=label_name, path=path, skip=skip,
                          split=assign_split(example_id, seed=self.seed,
                                             val_fraction=self.val_fraction))

    def refs(self):
        """Every `ExampleRef`, listed in this process, in id order."""
        return sorted(self._refs(), key=lambda ref: ref.id)

    def sample_paths(self, n):
        """About `n` readable paths spread evenly over the classes: in each class, the first
        by a hash of (seed, id), as `FolderSource.sample_paths` ranks them."""
        per_class = max(1, -(-n // len(self.class_names)))
        by_class = {}
        for ref in self._refs():
            if not (ref.skip or self.links.reason(ref.path)):
                by_class.setdefault(ref.label, []).append(ref)
        return [ref.path for label in sorted(by_class) for ref in sorted(
            by_class[label], key=lambda ref: _rank(self.seed, ref.id))[:per_class]]

    def fingerprint(self, refs=None):
        """The data fingerprint, read in this process; equal to the embed job's.

        Args:
            refs: this source's `refs()` when they are listed already. Defaults to listing them.
        """
        return combine_hashes(
            entry_hash(ref.id, ref.label_name, "unreadable" if self.links.reason(ref.path)
                       else file_digest(ref.path))
            for ref in (self.refs() if refs is None else refs))


class ListSource(_Listed):
    """A labelled CSV list (see the module docstring).

    The driver reads the list once, to refuse it before any work; the workers read it again
    (`list_examples`). A listed file that is missing or unreadable is skipped with its reason.

    Args:
        data: the list file.
        val_fraction: as for `FolderSource`. Defaults to `0.2`.
        seed: as for `FolderSource`. Defaults to `123`.
        follow_links: which symbolic links are read (`pipeline.data.links`; a listed path is
            looked at by itself). Defaults to `"no"`.

    Raises:
        ValueError: a `.txt` list or a CSV without `path` and `label` columns, a line without
            its path, label or id, an id listed twice, or fewer than two classes.
    """

    def __init__(self, data, *, val_fraction=0.2, seed=123, follow_links="no"):
        self.location = data if "://" in data else os.path.abspath(data)
        self.file = ListFile(self.location)
        self.root = self.file.folder  # relative paths are read from it
        self.val_fraction, self.seed = val_fraction, seed
        self.links = LinkPolicy(None, follow_links)
        listed = self.file
        if not (listed.has_header and listed.label_column is not None):
            raise ValueError(f"data {data!r}: a list needs a label column for jobs.embed; "
                             "predict and evaluate take unlabelled lists (jobs.embed takes a "
                             "CSV whose header holds path and label)")
        columns = [("path", listed.path_column), ("label", listed.label_column),
                   ("id", listed.id_column)]
        lines, labels = {}, set()
        for number, fields in listed.lines():
            for name, column in columns:
                if column is not None and (len(fields) <= column or not fields[column].strip()):
                    raise ValueError(f"data {data!r}: line {number} has no {name}")
            example_id, _, label = listed.entry(fields)
            if example_id in lines:
                raise ValueError(f"data {data!r}: id {example_id!r} is on lines "
                                 f"{lines[example_id]} and {number}")
            lines[example_id] = number
            labels.add(label)
        self.class_names = _classes(data, labels)

    def _parse(self, line):
        fields = self.file.fields(line)
        if fields:
            yield self._ref(*self.file.entry(fields))

    def _refs(self):
        for _, fields in self.file.lines():
            yield self._ref(*self.file.entry(fields))

    def list_examples(self):
        """A `PTransform` that reads the list on the workers: `(ref, None)` pairs."""
        return "ListFiles" >> (self.file.read_lines()
                               | "ParseLines" >> beam.FlatMap(self._parse)
                               | "NoBytesYet" >> beam.Map(lambda ref: (ref, None)))


class GlobSource(_Listed):
    """The images a glob matches, labelled by their first folder below the glob's root (see the
    module docstring). Locally the root is walked as a folder is (`match_folder`, with the link
    policy) and the paths filtered by the pattern; on `gs://` the pattern is matched by Beam.

    Args:
        data: the pattern.
        val_fraction, seed, follow_links: as for `FolderSource`.

    Raises:
        ValueError: no folder to start from, a matched image directly in the root (it has no
            label), or fewer than two classes.
    """

    def __init__(self, data, *, val_fraction=0.2, seed=123, follow_links="no"):
        self.location, self.root = split_glob(data)
        self.val_fraction, self.seed = val_fraction, seed
        self.links = LinkPolicy(self.root, follow_links)
        ids = [example_id for example_id, _, _ in self._matches(self.location)]
        loose = [example_id for example_id in ids if "/" not in example_id]
        if loose:
            raise ValueError(f"data {data!r}: {len(loose):,} matched images (e.g. {loose[0]!r}) "
                             f"sit directly in {self.root}; the first folder below it is the "
                             "label")
        self.class_names = _classes(data, {example_id.split("/")[0] for example_id in ids})

    def _matches(self, pattern):
        """`(id, path, skip reason)` of every image (or link not read) the pattern matches."""
        if "://" in pattern:
            (result,) = FileSystems.match([pattern])
            found = sorted(meta.path for meta in result.metadata_list)
        else:
            regex = re.compile(FileSystem.translate_pattern(pattern))
            found = [path for path in match_folder(self.root, self.links) if regex.match(path)]
        for path, skip in listed_images(found, self.links):
            yield posixpath.relpath(path, self.root), path, skip

    def _labelled(self, pattern):
        for example_id, path, skip in self._matches(pattern):
            yield self._ref(example_id, path, example_id.split("/")[0], skip)

    def _refs(self):
        return self._labelled(self.location)

    def list_examples(self):
        """A `PTransform` that matches the pattern on the workers: `(ref, None)` pairs."""
        return "ListFiles" >> (beam.Create([self.location])
                               | "MatchFiles" >> beam.FlatMap(self._labelled)
                               | "NoBytesYet" >> beam.Map(lambda ref: (ref, None)))


def source_paths(source, ids):
    """The files of a cache's example ids (for thumbnails), from its manifest's `source`: a
    list's paths are read from the list; a folder's and a glob's are below the root; None for
    sources without files (TFDS) or a list that is gone."""
    location, root = source.get("location") or "", source.get("root")
    if location.lower().endswith(LIST_EXTENSIONS):
        if not tf.io.gfile.exists(location):
            return None
        listed = ListFile(location)
        paths = dict(listed.entry(fields)[:2] for _, fields in listed.lines())
        return [paths.get(example_id, "") for example_id in ids]
    return [posixpath.join(root, example_id) for example_id in ids] if root else None
