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

Example:
    >>> keys = slice_keys(scored, by=("folder", "size"), slices_csv=None)
    >>> rows = slice_figures(scored, keys, class_names)
"""
import csv
import html

import numpy as np
import tensorflow as tf

from pipeline.evaluation.config import SLICE_BY
from pipeline.reports.intervals import confusion_figures, metric_intervals

__all__ = ["SLICE_BY", "SIZE_EDGES", "slice_keys", "slice_figures", "slices_section"]

#: Edges of the shorter-side buckets, in pixels.
SIZE_EDGES = (128, 256, 512, 1024)


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


def _read_csv(path):
    """`{column: {id: value}}` of a slices file (an `id` column and any others)."""
    with tf.io.gfile.GFile(path) as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "id" not in rows[0]:
        raise ValueError(f"--slices {path!r}: expected a CSV file with an id column and at "
                         "least one column of metadata")
    return {column: {row["id"]: row[column] for row in rows if row[column] != ""}
            for column in rows[0] if column != "id"}


def slice_keys(scored, *, by=(), slices_csv=None):
    """`{dimension: {id: slice}}` of the scored images; a dimension without slices is left out.

    Args:
        scored: `{id: review.Scored}` of the candidate's images.
        by: dimensions of `SLICE_BY`. Defaults to `()`.
        slices_csv: a CSV file of the user's own metadata, or None. Defaults to None.
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
    if slices_csv:
        found.update(_read_csv(slices_csv))
    return {dimension: keys for dimension, keys in found.items() if keys}


def slice_figures(scored, keys, class_names):
    """Each slice's figures, the lowest accuracy first.

    Returns:
        `[{dimension, slice, count, accuracy, accuracy_interval, macro_f1, macro_f1_interval,
        per_class, ids}]` (`per_class[name]["recall"]`, as a report has it).
    """
    k, rows = len(class_names), []
    for dimension, of in sorted(keys.items()):
        for name in sorted(set(of.values())):
            ids = sorted(i for i, key in of.items() if key == name and i in scored)
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


def slices_section(rows, whole_accuracy):
    """The report's `Slices` section: one row per slice, the furthest below the whole first."""
    body = "".join(
        f"<tr><td>{html.escape(row['dimension'])}</td><td>{html.escape(row['slice'])}</td>"
        f"<td>{row['count']}</td><td>{row['accuracy']:.4f} [{row['accuracy_interval'][0]:.4f}, "
        f"{row['accuracy_interval'][1]:.4f}]</td><td>{row['accuracy'] - whole_accuracy:+.4f}"
        f"</td><td>{row['macro_f1']:.4f} [{row['macro_f1_interval'][0]:.4f}, "
        f"{row['macro_f1_interval'][1]:.4f}]</td></tr>" for row in rows)
    return ("Slices", "<p>Each slice's figures with their 95 % bootstrap intervals, the "
            f"furthest below the whole set ({whole_accuracy:.4f}) first.</p><table><tr>"
            "<th>dimension</th><th>slice</th><th>images</th><th>accuracy [95 %]</th>"
            "<th>vs all</th><th>macro-F1 [95 %]</th></tr>" + body + "</table>")
