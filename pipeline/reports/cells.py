"""From every number of a report to its images: the pages behind the linked confusion cells,
classes and changes (the tables themselves: `pipeline.reports.matrix`, re-exported here).

The pages are static files beside the report:

    <report>/
      index.html                          the matrix; its counts link into cells/
      cells/
        c<t>-<p>.html, c<t>-<p>-2.html ...  images of true class t predicted as p (0-based)
        class-<t>.html, ...                every image of true class t
        thumbs/<sha256 of the id>.jpg      128 px JPEG thumbnails
      changes.html                        its entries link into changes/
      changes/
        <kind>-<i>.html, ...              the images of entry i of a kind (fixed, broken, ...)
        thumbs/...

`write_cell_pages` writes `cells/` from every image's row (`id`, `path`, `true`, `predicted`,
`confidence`: `predictions.csv`, or the arrays of a training report); `read_links` finds the
pages already written into a folder; `write_change_pages` writes `changes/` from
`pipeline.reports.runs.diff_runs`' rows.

Within a page set the images run most confident first, then by id, `PAGE_SIZE` (200) to a page.
To keep the driver bounded on big evaluations, only the first `THUMBNAILS` (200) images of each
page set get a thumbnail (the whole first page at the default size); later pages list their rows
without one, so a cell of a million images costs 200 image reads, not a million. The rows are
spread over at most 64 temporary files by true class, so the writer holds one class's rows in
memory at a time, never the whole evaluation's. Links are relative, every text is escaped, and
pages name images by id, never by path; each thumbnail links to its image file where the row's
path is known (`pipeline.reports.pages.image_href`).

Example:
    >>> links = write_cell_pages("runs/head", rows, class_names=["cat", "dog"], title="head")
    >>> html_text = confusion_table([[5, 1], [0, 6]], ["cat", "dog"], links=links)
"""
import collections
import concurrent.futures
import contextlib
import csv
import functools
import hashlib
import html
import os
import shutil
import tempfile

import numpy as np

from pipeline.reports.matrix import STYLE, Links, class_table, confusion_table, link, pairs_table
from pipeline.reports.pages import image_href, table, thumbnail, write_page
from pipeline.validation import check_scalar

__all__ = ["PAGE_SIZE", "THUMBNAILS", "Links", "confusion_table", "class_table", "pairs_table",
           "array_rows", "prediction_rows", "write_cell_pages", "read_links", "write_image_pages",
           "write_change_pages"]

#: Images on one page of a page set.
PAGE_SIZE = 200
#: Images of a page set that get a thumbnail (the first ones).
THUMBNAILS = 200

_CELLS, _CHANGES, _THUMBS = "cells", "changes", "thumbs"
#: Threads that write thumbnails (Pillow decodes and encodes without holding the GIL).
_THUMB_THREADS = 4
_BUCKETS = 64
_COLUMNS = ("id", "path", "true", "predicted", "confidence")


def array_rows(ids, y_true, proba, class_names, paths):
    """Every image's row (`id`, `path`, `true`, `predicted`, `confidence`) from a training
    report's arrays (`paths` may hold `""` for an image whose file is unknown)."""
    proba = np.asarray(proba, np.float64)
    predicted = np.argmax(proba, axis=1)
    for key, label, guess, row, path in zip(ids, y_true, predicted, proba, paths):
        yield {"id": str(key), "path": str(path or ""), "true": class_names[int(label)],
               "predicted": class_names[int(guess)], "confidence": float(row[guess])}


def prediction_rows(run_path):
    """Streams the rows of `run_path/predictions.csv` (`runs.write_predictions`)."""
    with open(os.path.join(run_path, "predictions.csv"), newline="") as handle:
        yield from csv.DictReader(handle)


def _fresh(folder):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, _THUMBS))
    return folder


def _class_of(index, name, row):
    try:
        return index[name]
    except KeyError:
        raise ValueError(f"image {row['id']!r}: expected a class among "
                         f"{', '.join(index)}; got {name!r}") from None


def _by_true_class(rows, index, scratch):
    """Yields `(true index, rows)` for each class with images, holding one bucket of classes
    (of at most `_BUCKETS`) in memory at a time; rows are checked against the classes."""
    count = min(len(index), _BUCKETS)
    paths = [os.path.join(scratch, f"{i}.csv") for i in range(count)]
    with contextlib.ExitStack() as stack:
        writers = [csv.DictWriter(stack.enter_context(open(p, "w", newline="")), _COLUMNS,
                                  extrasaction="ignore") for p in paths]
        for row in rows:
            _class_of(index, row["predicted"], row)
            writers[_class_of(index, row["true"], row) % count].writerow(row)
    for path in paths:
        groups = collections.defaultdict(list)
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle, _COLUMNS):
                groups[index[row["true"]]].append(row)
        yield from sorted(groups.items())


def write_cell_pages(out_dir, rows, *, class_names, title, page_size=PAGE_SIZE,
                     thumbnails=THUMBNAILS):
    """Writes `out_dir/cells/`: the image pages of every non-empty confusion cell and class.

    Any earlier `cells/` folder is replaced. The pages link back to `out_dir/index.html`.

    Args:
        out_dir: the report folder.
        rows: every image's row (`id`, `path`, `true`, `predicted`, `confidence`), in any order
            (an iterable, read once: `predictions.csv`'s rows, or `array_rows`).
        class_names: the class names, in the matrix's order.
        title: the report's title (names, never paths), which the pages' titles begin with.
        page_size: images per page. Defaults to `PAGE_SIZE`.
        thumbnails: the first images of each page set that get a thumbnail. Defaults to
            `THUMBNAILS`.

    Returns:
        The `Links` of the pages written.

    Raises:
        ValueError: a row whose class is not among `class_names`.
    """
    folder = _fresh(os.path.join(out_dir, _CELLS))
    index = {name: i for i, name in enumerate(class_names)}
    links = Links({}, {})
    with tempfile.TemporaryDirectory() as scratch:
        for t, group in _by_true_class(rows, index, scratch):
            true = class_names[t]
            links.classes[t] = f"{_CELLS}/" + write_image_pages(
                folder, f"class-{t}", group, title=f"{title}: true {true}", back="../index.html",
                page_size=page_size, thumbnails=thumbnails)
            cells = collections.defaultdict(list)
            for row in group:
                cells[index[row["predicted"]]].append(row)
            for p, cell in sorted(cells.items()):
                links.cells[(t, p)] = f"{_CELLS}/" + write_image_pages(
                    folder, f"c{t}-{p}", cell, back="../index.html", page_size=page_size,
                    title=f"{title}: true {true}, predicted {class_names[p]}",
                    thumbnails=thumbnails)
    return links


def read_links(out_dir, class_names):
    """The `Links` of the cell pages found in `out_dir/cells/` (by their names), e.g. those
    `jobs.evaluate` wrote from `predictions.csv` before drawing the report."""
    def found(name):
        return os.path.isfile(os.path.join(out_dir, _CELLS, name))

    n = len(class_names)
    return Links({(t, p): f"{_CELLS}/c{t}-{p}.html" for t in range(n) for p in range(n)
                  if found(f"c{t}-{p}.html")},
                 {t: f"{_CELLS}/class-{t}.html" for t in range(n) if found(f"class-{t}.html")})


def _thumb(folder, row):
    """The thumbnail's src (relative to `folder`), written once per id, or `""`."""
    src = f"{_THUMBS}/{hashlib.sha256(row['id'].encode()).hexdigest()[:24]}.jpg"
    target = os.path.join(folder, src)
    if os.path.isfile(target) or (row["path"] and thumbnail(row["path"], target)):
        return src
    return ""


def _nav(names, number, back):
    """The links of page `number` of `names`: back, first, previous, next, last."""
    last = len(names) - 1
    steps = [("first", 0), ("previous", number - 1), ("next", number + 1), ("last", last)]
    moves = " ".join(link(names[to], label) for label, to in steps
                     if 0 <= to <= last and to != number)
    return f"<p>{link(back, 'back')} · page {number + 1:,} of {len(names):,} {moves}</p>"


def write_image_pages(folder, stem, rows, *, title, back, columns=("true", "predicted"),
                      page_size=PAGE_SIZE, thumbnails=THUMBNAILS):
    """Writes a page set: `stem.html`, `stem-2.html`, ... in `folder`, and their thumbnails.

    Each page is a table (number, thumbnail, id, `columns`, confidence), most confident first,
    then by id.

    Args:
        folder: where the pages go (thumbnails in `folder/thumbs/`).
        stem: the first page's name without `.html`.
        rows: the images (`id`, `path`, `confidence` and `columns`).
        title: the pages' title.
        back: the relative href of the page that links here.
        columns: the rows' text fields shown between the id and the confidence. Defaults to
            `("true", "predicted")`.
        page_size: images per page. Defaults to `PAGE_SIZE`.
        thumbnails: how many of the first images get a thumbnail. Defaults to `THUMBNAILS`.

    Returns:
        The first page's file name.
    """
    check_scalar(page_size, "page_size", int, min_val=1)
    check_scalar(thumbnails, "thumbnails", int, min_val=0)
    rows = sorted(rows, key=lambda r: (-float(r["confidence"]), r["id"]))
    names = [f"{stem}.html"] + [f"{stem}-{n}.html"
                                for n in range(2, -(-len(rows) // page_size) + 1)]
    note = (f" Thumbnails for the first {thumbnails:,} only." if len(rows) > thumbnails
            else "")
    with concurrent.futures.ThreadPoolExecutor(_THUMB_THREADS) as pool:
        sources = list(pool.map(functools.partial(_thumb, folder), rows[:thumbnails]))
    for number, name in enumerate(names):
        start = number * page_size
        shown = [{"#": start + i + 1, "image": _image(sources, start + i,
                                                       image_href(row["path"], folder)),
                  "id": row["id"], **{c: row[c] for c in columns},
                  "confidence": float(row["confidence"])}
                 for i, row in enumerate(rows[start:start + page_size])]
        nav = _nav(names, number, back)
        body = (f"<style>{STYLE}</style>{nav}<div class=\"thumbs\">"
                + table(["#", "image", "id", *columns, "confidence"], shown, trusted=("image",))
                + f"</div>{nav}")
        write_page(os.path.join(folder, name), title, body,
                   subtitle=f"{len(rows):,} image{'' if len(rows) == 1 else 's'}, the most "
                            f"confident first.{note}")
    return names[0]


def _image(sources, number, href):
    """The image cell: the thumbnail (or, past the thumbnailed ones, `open`), linked to the
    image file where `href` is known."""
    src = sources[number] if number < len(sources) else ""
    shown = f'<img src="{html.escape(src)}" alt="" loading="lazy">' if src else ""
    if not href:
        return shown
    return f'<a href="{html.escape(href)}">{shown or "open"}</a>'


def write_change_pages(run_path, changes, *, title, page_size=PAGE_SIZE, thumbnails=THUMBNAILS):
    """Writes `run_path/changes/`: one page set per entry of the changes page, an entry being
    the images of one kind of change with the same true class and the same predictions before
    and after; any earlier `changes/` folder is replaced.

    Args:
        run_path: the run folder (its `changes.html` links here).
        changes: `pipeline.reports.runs.diff_runs`' rows.
        title: the run's title, which the pages' titles begin with.
        page_size, thumbnails: see `write_cell_pages`.

    Returns:
        `{kind: trusted HTML}`: each kind's table of entries (true, before, after, images), the
        largest first, each count linked to its pages.
    """
    folder = _fresh(os.path.join(run_path, _CHANGES))
    entries = collections.defaultdict(list)
    for change in changes:
        entries[(change["change"], change["true"], change["before"], change["after"])].append(
            change)
    ordered = sorted(entries.items(), key=lambda item: (-len(item[1]), item[0]))
    tables = collections.defaultdict(list)
    for (kind, true, before, after), images in ordered:
        first = write_image_pages(
            folder, f"{kind}-{len(tables[kind])}", images, back="../changes.html",
            title=f"{title}: {kind}, true {true}, {before} -> {after}",
            columns=("true", "before", "after"), page_size=page_size, thumbnails=thumbnails)
        tables[kind].append({"true": true, "before": before, "after": after,
                             "images": link(f"{_CHANGES}/{first}", f"{len(images):,}")})
    return {kind: table(["true", "before", "after", "images"], rows, trusted=("images",))
            for kind, rows in tables.items()}
