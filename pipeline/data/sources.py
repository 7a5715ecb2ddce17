"""Data sources: a folder of class sub-folders, or a TFDS data set, with deterministic splits
(labelled lists and globs: `pipeline.data.lists`; `open_source` opens any of them).

A source's `list_examples()` is a `PTransform` that lists its examples *inside the pipeline* (on
workers) as `(ref, encoded bytes or None)` pairs; None means "read the file at `ref.path`". The
driver only looks at the top of the source: the class folders, or the TFDS split metadata, so
neither its work nor the pipeline graph grows with the number of images.

Folder layout (the contract of `tf.keras.utils.image_dataset_from_directory`)::

    data/
      class_a/
        a_1.jpg
        nested/a_2.png
      class_b/
        b_1.jpeg

Class names are the sorted sub-folder names; label i is the i-th name. Files are matched through
Beam's `FileSystems` on `gs://`, walked locally (symbolic links skipped with a reason unless
`follow_links` says otherwise: `pipeline.data.links`), and sorted; only `IMAGE_EXTENSIONS` are read,
matched case-insensitively. A folder example's id is its path relative to the root, and its split
is fixed by hashing the id with the seed, so a file keeps its split when others come or go.
"""
import dataclasses
import hashlib
import os
import posixpath

import apache_beam as beam
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems

from pipeline.data.fingerprint import combine_hashes, entry_hash
from pipeline.data.images import IMAGE_EXTENSIONS
from pipeline.data.links import LinkPolicy, as_text
from pipeline.validation import check_scalar

__all__ = ["ExampleRef", "FolderSource", "TfdsSource", "open_source", "assign_split",
           "file_digest", "read_bytes", "sub_folders", "match_folder", "listed_images"]

TFDS_PREFIX = "tfds:"
_TFDS_SPLITS = {"train": "train", "validation": "val", "val": "val", "test": "test"}
#: How many files the driver looks at, at most, to check that a class folder holds an image.
_PEEK = 1000


@dataclasses.dataclass(frozen=True)
class ExampleRef:
    """One example of a source.

    Attributes:
        id: stable id: the path relative to the folder root, or the TFDS example key.
        label: integer label (index into the source's class names).
        label_name: the class name.
        split: `"train"`, `"val"` or `"test"`.
        path: the file to read, or `""` when the bytes travel with the ref (TFDS).
        digest: sha256 of the file's content once read, or `""`.
        skip: why the file is not read, where the listing knew it (a name that is not UTF-8
            text: `pipeline.data.links.as_text`), or `""`.
    """

    id: str
    label: int
    label_name: str
    split: str
    path: str = ""
    digest: str = ""
    skip: str = ""


def assign_split(example_id, *, seed, val_fraction):
    """Returns `"val"` or `"train"` for an id, by hashing it with the seed (stable, order-free)."""
    digest = hashlib.sha256(f"{seed}\x00{example_id}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else "train"


def read_bytes(path):
    """The bytes of a file (local or `gs://`)."""
    with tf.io.gfile.GFile(path, "rb") as handle:
        return handle.read()


def file_digest(path):
    """sha256 hex digest of a file's content, or `"unreadable"` if it cannot be read."""
    try:
        return hashlib.sha256(read_bytes(path)).hexdigest()
    except (OSError, tf.errors.OpError):
        return "unreadable"


def sub_folders(folder):
    """The names of the folders directly in `folder` (local, or through `tf.io.gfile`), sorted;
    locally a name that is not UTF-8 text does not stop the listing (TensorFlow's would)."""
    if "://" in folder:
        return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(folder)
                      if tf.io.gfile.isdir(posixpath.join(folder, name)))
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def match_folder(folder, links, limit=None):
    """Paths under `folder` (recursively), sorted when unlimited: walked with `links` where local
    (unfollowed links listed, to be skipped with their reason), through Beam's file systems else."""
    if "://" not in folder:
        found = links.walk(folder)
        return found if limit is None else found[:limit]
    (result,) = FileSystems.match([posixpath.join(folder, "**")], limits=[limit])
    return sorted(meta.path for meta in result.metadata_list)


def _is_image(path):
    return path.lower().endswith(IMAGE_EXTENSIONS)


def listed_images(paths, links):
    """`(path, skip reason)` of each listed path to carry as an example: the images, and the
    links `links` will not read (to be skipped with their reason); a name that is not UTF-8
    text is spelled with escapes and skipped (`links.as_text`). Other files are left out."""
    for listed in paths:
        path, skip = as_text(listed)
        if _is_image(path) or links.reason(listed):
            yield path, skip


class FolderSource:
    """A folder with one sub-folder per class.

    The constructor lists the root once (the class folders) and peeks into each class folder
    for an image; files are listed by `list_examples()` in the pipeline, or by `refs()` where a
    job reads a folder in one process (fine-tune, evaluate).

    Args:
        root: the folder (local path or `gs://...`).
        val_fraction: fraction of examples hashed into the validation split. Defaults to `0.2`.
        seed: seed of the split hash. Defaults to `123`.
        follow_links: which symbolic links are read (`pipeline.data.links.FOLLOW_LINKS`).
            Defaults to `"no"`.

    Raises:
        ValueError: no such folder, fewer than two classes, or a class folder without images.
    """

    def __init__(self, root, *, val_fraction=0.2, seed=123, follow_links="no"):
        self.root = root.rstrip("/") if "://" in root else os.path.abspath(root)
        self.val_fraction, self.seed = val_fraction, seed
        self.links = LinkPolicy(self.root, follow_links)
        if not tf.io.gfile.isdir(self.root):
            raise ValueError(f"data: expected a folder of class sub-folders; got {root!r} "
                             "(not a folder)")
        self.class_names = sub_folders(self.root)
        if len(self.class_names) < 2:
            loose = sum(map(_is_image, tf.io.gfile.listdir(self.root) if "://" in self.root
                            else os.listdir(self.root)))
            raise ValueError(f"data {root!r}: expected at least two class sub-folders; got "
                             f"{len(self.class_names)} ({', '.join(self.class_names) or 'none'})"
                             + (f"; {loose:,} images sit directly in this folder: put them in "
                                "one sub-folder per class" if loose else ""))
        for name in self.class_names:
            refused = self.links.reason(posixpath.join(self.root, name))
            if refused:
                raise ValueError(f"data {root!r}: class folder {name!r} is a {refused}")
            peek = match_folder(posixpath.join(self.root, name), self.links, _PEEK)
            if len(peek) < _PEEK and not any(map(_is_image, peek)):
                raise ValueError(f"data {root!r}: class folder {name!r} holds no images "
                                 f"({', '.join(IMAGE_EXTENSIONS)})")

    def sample_paths(self, n):
        """About `n` image paths spread evenly over the classes, without listing every file.

        From each class folder, among the first (up to 1,000) files matched, the first by a
        hash of (seed, id): the same files for the same folder and seed.
        """
        def rank(path):
            example_id = posixpath.relpath(path, self.root)
            return hashlib.sha256(f"{self.seed}\x00{example_id}".encode()).digest()

        def readable(path):
            return _is_image(path) and not self.links.reason(path)

        per_class = max(1, -(-n // len(self.class_names)))
        return [path for name in self.class_names
                for path in sorted(filter(readable, match_folder(
                    posixpath.join(self.root, name), self.links, _PEEK)), key=rank)[:per_class]]

    def class_refs(self, label):
        """The sorted `ExampleRef`s of class `label` (one listing of its folder)."""
        name = self.class_names[label]
        for path, skip in listed_images(match_folder(posixpath.join(self.root, name), self.links),
                                        self.links):
            example_id = posixpath.relpath(path, self.root)
            yield ExampleRef(id=example_id, label=label, label_name=name, path=path, skip=skip,
                             split=assign_split(example_id, seed=self.seed,
                                                val_fraction=self.val_fraction))

    def refs(self):
        """Every `ExampleRef`, listed in this process (for jobs that read a folder locally)."""
        return [ref for label in range(len(self.class_names)) for ref in self.class_refs(label)]

    def fingerprint(self, refs=None):
        """The data fingerprint of the folder, read in this process; equal to the embed job's.

        Args:
            refs: this source's `refs()` when they are listed already. Defaults to listing them.
        """
        return combine_hashes(
            entry_hash(ref.id, ref.label_name,
                       "unreadable" if self.links.reason(ref.path) else file_digest(ref.path))
            for ref in (self.refs() if refs is None else refs))

    def list_examples(self):
        """A `PTransform` that lists every class folder on the workers: `(ref, None)` pairs."""
        return "ListFiles" >> (
            beam.Create(list(range(len(self.class_names))))
            | "MatchClassFolder" >> beam.FlatMap(self.class_refs)
            | "NoBytesYet" >> beam.Map(lambda ref: (ref, None)))


class TfdsSource:
    """A TFDS data set, `tfds:NAME` (optionally `tfds:NAME/CONFIG:VERSION`).

    Its `train`, `validation` and `test` splits map to `train`, `val` and `test`; when it has no
    validation split, training examples are hashed into `val` with `val_fraction`, as for folders.
    The data set must be prepared (downloaded) already or downloadable; ids are TFDS example ids.
    Each split is read in parallel, one task per file shard of the split (TFDS's even splits).

    Args:
        name: the TFDS name, without the `tfds:` prefix.
        val_fraction: as for `FolderSource`. Defaults to `0.2`.
        seed: as for `FolderSource`. Defaults to `123`.
        data_dir: TFDS data directory. Defaults to TFDS's own.

    Raises:
        ValueError: an unknown data set, one without an image and a class label, or one that
            cannot be downloaded.
    """

    links = None  # its bytes travel with the refs

    def __init__(self, name, *, val_fraction=0.2, seed=123, data_dir=None):
        import tensorflow_datasets as tfds

        self.name, self.data_dir = name, data_dir
        self.val_fraction, self.seed = val_fraction, seed
        try:
            builder = tfds.builder(name, data_dir=data_dir)
            builder.download_and_prepare()
        except Exception as err:  # TFDS raises many types; turn them into one line
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ValueError(f"data tfds:{name}: cannot load it: {first_line}") from err
        self.image_key, self.label_key = _image_and_label_keys(builder, name)
        self.class_names = list(builder.info.features[self.label_key].names)
        splits = builder.info.splits
        # A builder never prepared (as under `tfds.testing.mock_data`) lists no splits.
        names = sorted(splits.keys()) or ["test", "train", "validation"]
        self.has_validation = any(_TFDS_SPLITS.get(s) == "val" for s in names)
        #: One `(split, part, parts)` task per file shard of each split.
        self.tasks = [(split, part, parts) for split in names
                      for parts in [max(1, splits[split].num_shards if split in splits else 1)]
                      for part in range(parts)]

    def list_examples(self):
        """A `PTransform` that reads every split, a file shard per task: `(ref, bytes)` pairs."""
        return "ReadTfds" >> (beam.Create(self.tasks) | "ReadShard" >> beam.FlatMap(self.examples))

    def examples(self, task):
        """Yields `(ref, encoded image bytes)` for every example of one task (a split's part)."""
        import tensorflow_datasets as tfds

        tfds_split, part, parts = task
        builder = tfds.builder(self.name, data_dir=self.data_dir)
        dataset = builder.as_dataset(
            split=tfds.even_splits(tfds_split, n=parts)[part] if parts > 1 else tfds_split,
            shuffle_files=False,
            decoders={self.image_key: tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(add_tfds_id=True))
        for example in tfds.as_numpy(dataset):
            example_id = example["tfds_id"].decode()
            label = int(example[self.label_key])
            split = _TFDS_SPLITS.get(tfds_split, tfds_split)
            if split == "train" and not self.has_validation:
                split = assign_split(example_id, seed=self.seed, val_fraction=self.val_fraction)
            yield (ExampleRef(id=example_id, label=label, label_name=self.class_names[label],
                              split=split), example[self.image_key])


def _image_and_label_keys(builder, name):
    import tensorflow_datasets as tfds

    features = builder.info.features
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    if not images or not labels:
        raise ValueError(f"data tfds:{name}: expected an Image and a ClassLabel feature; got "
                         f"{', '.join(sorted(features.keys()))}")
    return images[0], ("label" if "label" in labels else labels[0])


def open_source(data, *, val_fraction=0.2, seed=123, follow_links="no"):
    """Opens `data`: `tfds:NAME` (`TfdsSource`), a folder of class sub-folders (`FolderSource`),
    a labelled `.csv` list or a glob (`pipeline.data.lists`; a `.txt` list is refused there).

    Example:
        >>> open_source("../shared/data/genki4k", val_fraction=0.2, seed=123).class_names
        ['not_smiling', 'smiling']
    """
    from pipeline.data import lists  # it builds on this module

    check_scalar(val_fraction, "val_fraction", float, min_val=0.0, max_val=1.0,
                 include_max=False)
    if data.startswith(TFDS_PREFIX):
        return TfdsSource(data[len(TFDS_PREFIX):], val_fraction=val_fraction, seed=seed)
    options = dict(val_fraction=val_fraction, seed=seed, follow_links=follow_links)
    if tf.io.gfile.isdir(data):
        return FolderSource(data, **options)
    if data.lower().endswith(lists.LIST_EXTENSIONS) and tf.io.gfile.exists(data):
        return lists.ListSource(data, **options)
    if lists.WILDCARD.search(data):
        return lists.GlobSource(data, **options)
    raise ValueError(f"data {data!r}: not a folder, a list or a glob; expected a folder of class "
                     "sub-folders, a labelled .csv list, a glob or tfds:NAME")
