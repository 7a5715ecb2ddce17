"""Slices of an evaluation: the figures of each part of the images, worst first.

A model can hold its accuracy on the whole set while failing one camera, one source folder or
the images where no face was found. A slice is a group of the scored images by one dimension:

    folder   the sub-folder level under each class (`cat/phone/x.jpg` -> `phone`), where there is
             one
    size     buckets of the images' shorter side (`< 128 px`, `128-255 px`, ...)
    face     face found or not, where the model crops faces
    FILE.csv an `id` column and any columns of the user's own metadata, one dimension each

Per slice: its image count, accuracy and macro-F1 with their 95 % bootstrap intervals
(`pipeline.reports.intervals`), and per-class recall for the gate's per-slice checks.

A dimension asked for that gives no slice (class folders without sub-folders, a model that does
not crop faces, a column no scored image has a value in) is reported with the reason
(`empty_dimensions`), never dropped in silence.

Example:
    >>> columns = read_slices_csv("own.csv")  # before the pass: refused in one line if wrong
    >>> keys = slice_keys(scored, by=("folder", "size"), columns=columns)
    >>> rows = slice_figures(scored, keys, class_names)
"""
import csv
import html
import io

import numpy as np
import tensorflow as tf

from pipeline.evaluation.config import SLICE_BY
from pipeline.reports.intervals import confusion_figures, metric_intervals

__all__ = ["SLICE_BY", "SIZE_EDGES", "read_slices_csv", "slice_keys", "empty_dimensions",
           "slice_figures", "slices_section"]

#: Edges of the shorter-side buckets, in pixels.
SIZE_EDGES = (128, 256, 512, 1024)
#: Why a dimension of `SLICE_BY` gives no slice.
_NO_SLICE = {"folder": "every image lies directly in its class folder (no sub-folder to slice by)",
             "size": "no image's size is known",
             "face": "the model does not crop faces (no image has a face found or not)"}


def _size_bucket(side):
    if side is None:
        return None
    for low, high in zip((0,) + SIZE_EDGES, SIZE_EDGES):
        if side < high:
            return f"{low}-{high - 1} px" if low else f"< {high} px"
    return f">= {SIZE_EDGES[-1]} px"


def _folder(image_id):
    parts = image_id.split("/")
    return parts[1] if len(parts) > 2 else None


def read_slices_csv(path):
    """`{column: {id: value}}` of a slices file: an `id` column and at least one other, UTF-8
    with or without a byte-order mark (as Excel saves "CSV UTF-8").

    Raises:
        ValueError: one line naming the file, when it is missing, not UTF-8 text or without
            an `id` column and a column of metadata.
    """
    if not tf.io.gfile.exists(path):
        raise ValueError(f"--slices {path!r}: no such file")
    with tf.io.gfile.GFile(path, "rb") as handle:
        try:
            text = handle.read().decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise ValueError(f"--slices {path!r}: expected UTF-8 text ({err})") from err
    reader = csv.DictReader(io.StringIO(text))
    columns = [c for c in reader.fieldnames or () if c != "id"]
    if "id" not in (reader.fieldnames or ()) or not columns:
        raise ValueError(f"--slices {path!r}: expected a CSV file with an id column and at "
                         f"least one column of metadata; got columns {reader.fieldnames or []}")
    rows = list(reader)
    return {column: {row["id"]: row[column] for row in rows if row[column]}
            for column in columns}


def slice_keys(scored, *, by=(), columns=None):
    """`{dimension: {id: slice}}` of the scored images, for every dimension asked for (one
    that gives no slice maps to `{}`: see `empty_dimensions`).

    Args:
        scored: `{id: review.Scored}` of the candidate's images.
        by: dimensions of `SLICE_BY`. Defaults to `()`.
        columns: `read_slices_csv` of the user's own metadata, or None. Defaults to None.
    """
    found = {}
    for dimension in by:
        if dimension == "folder":
            keys = {i: _folder(i) for i in scored}
        elif dimension == "size":
            keys = {i: _size_bucket(s.short_side) for i, s in scored.items()}
        else:
            keys = {i: None if s.face_found is None else ("face found" if s.face_found
                                                           else "no face found")
                    for i, s in scored.items()}
        found[dimension] = {i: key for i, key in keys.items() if key is not None}
    for column, values in (columns or {}).items():
        found[column] = {i: key for i, key in values.items() if i in scored}
    return found


def empty_dimensions(keys):
    """`[{dimension, reason}]` of the dimensions of `slice_keys` that give no slice."""
    return [{"dimension": dimension,
             "reason": _NO_SLICE.get(dimension, "no scored image has a value in this column "
                                     "of the --slices file")}
            for dimension, of in sorted(keys.items()) if not of]


def slice_figures(scored, keys, class_names):
    """Each slice's figures, the lowest accuracy first.

    Returns:
        `[{dimension, slice, count, accuracy, accuracy_interval, macro_f1, macro_f1_interval,
        per_class, ids}]` (`per_class[name]["recall"]`, as a report has it).
    """
    k, rows = len(class_names), []
    for dimension, of in sorted(keys.items()):
        for name in sorted(set(of.values())):
            ids = sorted(i for i, key in of.items() if key == name)
            pairs = np.array([(scored[i].true, scored[i].pred) for i in ids])
            confusion = np.zeros((k, k), np.int64)
            np.add.at(confusion, (pairs[:, 0], pairs[:, 1]), 1)
            point = {name: values[0] for name, values in confusion_figures(
                confusion[None]).items()}
            intervals = metric_intervals(confusion)
            top5 = ({"top5_accuracy": float(np.mean([scored[i].top5 for i in ids]))}
                    if k >= 10 else {})
            rows.append({**top5, "dimension": dimension, "slice": name, "count": len(ids),
                         "accuracy": float(point["accuracy"]),
                         "accuracy_interval": intervals["accuracy"],
                         "macro_f1": float(point["macro_f1"]),
                         "macro_f1_interval": intervals["macro_f1"],
                         "per_class": {c: {"recall": float(point["recall"][j])}
                                       for j, c in enumerate(class_names)}, "ids": ids})
    return sorted(rows, key=lambda row: (row["accuracy"], row["dimension"], row["slice"]))


def slices_section(rows, whole_accuracy, empty=()):
    """The report's `Slices` section: one row per slice, the furthest below the whole first,
    then each dimension that gave no slice (`empty_dimensions`) with its reason."""
    body = "".join(
        f"<tr><td>{html.escape(row['dimension'])}</td><td>{html.escape(row['slice'])}</td>"
        f"<td>{row['count']}</td><td>{row['accuracy']:.4f} [{row['accuracy_interval'][0]:.4f}, "
        f"{row['accuracy_interval'][1]:.4f}]</td><td>{row['accuracy'] - whole_accuracy:+.4f}"
        f"</td><td>{row['macro_f1']:.4f} [{row['macro_f1_interval'][0]:.4f}, "
        f"{row['macro_f1_interval'][1]:.4f}]</td></tr>" for row in rows)
    table = ("<p>Each slice's figures with their 95 % bootstrap intervals, the furthest below "
             f"the whole set ({whole_accuracy:.4f}) first.</p><table><tr><th>dimension</th>"
             "<th>slice</th><th>images</th><th>accuracy [95 %]</th><th>vs all</th>"
             "<th>macro-F1 [95 %]</th></tr>" + body + "</table>") if rows else ""
    notes = "".join(f"<p><strong>No slice by {html.escape(e['dimension'])}</strong>: "
                    f"{html.escape(e['reason'])}.</p>" for e in empty)
    return ("Slices", table + notes)
