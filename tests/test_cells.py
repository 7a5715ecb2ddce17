import html.parser
import os
import re
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from pipeline.reports import cells, write_report
from pipeline.reports import runs as report_runs
from pipeline.reports.pages import image_href
from tests.test_report_runs import CHROMIUM, chromium_overflow

NAMES = ["cat", "dog", "owl"]
EVIL_NAMES = ["<script>alert(1)</script>", "fish & chips", "say \"cheese\" 'now'"]


class _Page(html.parser.HTMLParser):
    """A page's relative links (`href`, `src`), its table rows' cell texts and its titles."""

    def __init__(self, text):
        super().__init__()
        self.links, self.rows, self.titles = [], [], []
        self._row = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[k] for k in ("href", "src") if attrs.get(k)]
        if attrs.get("title"):
            self.titles.append(attrs["title"])
        if tag == "tr":
            self._row = []
            self.rows.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._row.append("")

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data


def _page(path):
    with open(path, encoding="utf-8") as handle:
        return _Page(handle.read())


def _ids(path):
    """The ids an image page lists, in order (its table's third column)."""
    return [row[2] for row in _page(path).rows[1:]]


def _images(root, count):
    """`count` tiny JPEG files under `root`; their paths."""
    os.makedirs(root, exist_ok=True)
    paths = []
    for i in range(count):
        paths.append(os.path.join(root, f"{i}.jpg"))
        Image.new("RGB", (12, 8), (20 * i % 256, 90, 160)).save(paths[-1])
    return paths


def _arrays(num_classes=3, per_class=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), per_class)
    proba = rng.dirichlet(np.ones(num_classes), size=len(y))
    return np.array([f"img_{i:03d}.jpg" for i in range(len(y))]), y, proba


def _report(tmp_path, names=NAMES, per_class=6, title="head on pets"):
    ids, y, proba = _arrays(len(names), per_class)
    paths = _images(tmp_path / "data", len(ids))
    out = tmp_path / "report"
    write_report(out, ids=ids, y_true=y, proba=proba, class_names=names, paths=paths,
                 title=title)
    return out, ids, y, proba


def test_a_confusion_cell_page_lists_exactly_that_cells_images(tmp_path):
    out, ids, y, proba = _report(tmp_path)
    predicted = proba.argmax(axis=1)
    for t in range(3):
        for p in range(3):
            mine = np.flatnonzero((y == t) & (predicted == p))
            page = out / "cells" / f"c{t}-{p}.html"
            assert page.is_file() == bool(len(mine))
            if len(mine):
                order = sorted(mine, key=lambda i: (-proba[i, p], ids[i]))
                assert _ids(page) == [ids[i] for i in order]
                assert f'href="cells/c{t}-{p}.html"' in (out / "index.html").read_text()
        assert sorted(_ids(out / "cells" / f"class-{t}.html")) == sorted(ids[y == t])


def test_pages_split_past_the_page_size_and_thumbnails_stop_at_their_limit(tmp_path):
    paths = _images(tmp_path / "data", 8)
    rows = [{"id": f"{i}.jpg", "path": paths[i], "true": "cat", "predicted": "dog",
             "confidence": 0.5 if i % 2 else 0.9} for i in range(8)]
    folder = tmp_path / "pages"
    first = cells.write_image_pages(folder, "set", rows, title="t", back="../index.html",
                                    page_size=3, thumbnails=4)
    assert first == "set.html"
    names = ["set.html", "set-2.html", "set-3.html"]
    assert sorted(p.name for p in folder.glob("*.html")) == sorted(names)
    listed = [i for name in names for i in _ids(folder / name)]
    assert listed == ["0.jpg", "2.jpg", "4.jpg", "6.jpg", "1.jpg", "3.jpg", "5.jpg", "7.jpg"]
    thumbs = [link for name in names for link in _page(folder / name).links
              if link.startswith("thumbs/")]
    assert len(thumbs) == 4 and len(list((folder / "thumbs").iterdir())) == 4
    assert "next" in (folder / "set.html").read_text()
    assert "Thumbnails for the first 4 only." in (folder / "set-3.html").read_text()


def test_a_cell_of_201_images_takes_two_pages_of_200(tmp_path):
    rows = [{"id": f"{i:03d}.jpg", "path": "", "true": "cat", "predicted": "cat",
             "confidence": 0.9} for i in range(201)]
    links = cells.write_cell_pages(tmp_path, rows, class_names=NAMES, title="t")
    assert links.cells == {(0, 0): "cells/c0-0.html"} and links.classes == {0: "cells/class-0.html"}
    assert len(_ids(tmp_path / "cells" / "c0-0.html")) == 200
    assert _ids(tmp_path / "cells" / "c0-0-2.html") == ["200.jpg"]
    assert cells.read_links(tmp_path, NAMES) == links


def _changes(tmp_path, out, ids, y):
    """Writes the changes of a run that fixed five cats (were dogs) and two dogs (were owls)."""
    paths = _images(tmp_path / "data", len(ids))
    rows = {i: {"id": i, "path": p, "digest": "d", "true": NAMES[t], "predicted": NAMES[t],
                "confidence": 0.7} for i, p, t in zip(ids, paths, y)}
    before = {i: {**row, "predicted": "dog" if n < 5 else "owl" if n in (6, 7) else
                  row["predicted"]} for n, (i, row) in enumerate(rows.items())}
    changes = report_runs.diff_runs(before, rows)
    report_runs.write_changes(out, changes, previous_run="run0", title="head on pets")
    return changes


def test_every_entry_of_the_changes_page_links_to_its_images(tmp_path):
    out, ids, y, _ = _report(tmp_path)
    changes = _changes(tmp_path, out, ids, y)
    entries = [link for link in _page(out / "changes.html").links
               if link.startswith("changes/")]
    assert entries == ["changes/fixed-0.html", "changes/fixed-1.html"]  # the largest first
    assert _ids(out / entries[0]) == list(ids[:5]) and _ids(out / entries[1]) == list(ids[6:8])
    assert len(changes) == 7


def _all_pages(root):
    return sorted(p for p in root.rglob("*.html"))


def test_every_relative_link_on_every_page_resolves(tmp_path):
    out, ids, y, _ = _report(tmp_path)
    _changes(tmp_path, out, ids, y)
    pages = _all_pages(out)
    assert len(pages) > 10
    for page in pages:
        for link in _page(page).links:
            parts = urllib.parse.urlsplit(link)
            assert not parts.scheme and not link.startswith("/"), (page, link)
            target = os.path.normpath(os.path.join(page.parent, urllib.parse.unquote(
                parts.path)))
            assert os.path.isfile(target), (page, link)


def test_names_are_escaped_and_no_page_holds_an_absolute_path(tmp_path):
    out, *_ = _report(tmp_path, names=EVIL_NAMES, title="<script>x</script> & \"q\"")
    for page in _all_pages(out):
        text = page.read_text()
        assert "<script" not in text and str(tmp_path) not in text, page
        assert "file:" not in text and 'href="/' not in text and 'src="/' not in text, page
    index = _page(out / "index.html")
    assert set(EVIL_NAMES) <= set(index.titles)  # attributes survive the quotes
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (out / "index.html").read_text()
    assert "fish &amp; chips" in (out / "cells" / "c1-1.html").read_text()


def test_without_paths_the_matrix_is_a_table_without_links(tmp_path):
    ids, y, proba = _arrays()
    write_report(tmp_path, ids=ids, y_true=y, proba=proba, class_names=NAMES)
    text = (tmp_path / "index.html").read_text()
    assert '<table class="cm">' in text and "cells/" not in text
    assert not (tmp_path / "cells").exists()


def test_the_matrix_colours_cells_by_their_share_of_the_true_class():
    text = cells.confusion_table([[4, 0], [1, 1]], ["a", "b"])
    assert "background:rgb(8,48,107);color:#fff" in text  # 4 of 4
    assert "background:rgb(247,251,255)" in text  # 0 of 4
    assert "background:rgb(107,174,214)" in text  # 1 of 2


def test_a_row_of_an_unknown_class_is_refused(tmp_path):
    rows = [{"id": "a.jpg", "path": "", "true": "cat", "predicted": "yak", "confidence": 1.0}]
    with pytest.raises(ValueError, match="expected a class among cat, dog, owl; got 'yak'"):
        cells.write_cell_pages(tmp_path, rows, class_names=NAMES, title="t")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_forty_classes_fit_1280_pixels_in_chromium(tmp_path):
    names = [f"class {i:02d}{' with a rather long name' if i % 4 == 0 else ''}"
             for i in range(40)]
    out, *_ = _report(tmp_path, names=names, per_class=3)
    for page in (out / "index.html", out / "cells" / "class-0.html"):
        shot = tmp_path / f"{page.stem}.png"
        assert chromium_overflow(page, shot) <= 0, page
        assert shot.stat().st_size > 10_000


def test_each_thumbnail_opens_its_image_file(tmp_path):
    out, ids, y, proba = _report(tmp_path)
    data = {os.path.normpath(p) for p in _images(tmp_path / "data", len(ids))}
    for page, count in ((out / "cells" / "class-0.html", 6), (out / "most_wrong.html", None)):
        linked = re.findall(r'<a href="([^"]+)"><img src="(?:thumbs/[^"]+)"', page.read_text())
        targets = {os.path.normpath(os.path.join(page.parent, urllib.parse.unquote(href)))
                   for href in linked}
        assert linked and targets <= data, page
        assert count is None or len(linked) == count
    assert image_href("", out) == "" and image_href("gs://b/x.jpg", out) == ""
    assert image_href(tmp_path / "my data" / "a#1.jpg", out) == "../my%20data/a%231.jpg"
