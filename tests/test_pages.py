"""Report page blocks: data is escaped by default, numbers print at 4 decimals, None is left out."""
import numpy as np
import pytest
from PIL import Image

from pipeline.reports.pages import (delta, fmt, headline, html_page, table, thumbnail,
                                    thumbnail_grid, write_page)

EVIL = "<script>alert(1)</script>"


@pytest.mark.parametrize("value, text", [
    (None, ""), (float("nan"), ""), (True, "yes"), (np.bool_(False), "no"), (1234567, "1,234,567"),
    (np.int64(5), "5"), (0.123456, "0.1235"), (np.float32(0.5), "0.5000"), ("a<b", "a&lt;b"),
])
def test_fmt(value, text):
    assert fmt(value) == text


@pytest.mark.parametrize("value, lower_is_better, css", [
    (0.01, False, "up"), (-0.01, False, "down"), (-0.01, True, "up"), (0.00001, False, "same"),
])
def test_delta_is_signed_and_coloured_by_what_is_better(value, lower_is_better, css):
    assert delta(value, lower_is_better=lower_is_better) == (
        f'<span class="{css}">{value:+.4f}</span>')
    assert delta(None) == ""


def test_page_escapes_title_and_subtitle_but_trusts_the_body(tmp_path):
    page = html_page(EVIL, "<b>body</b>", subtitle=EVIL)
    assert "<script>" not in page and page.count("&lt;script&gt;") == 3  # <title>, <h1>, sub
    assert "<b>body</b>" in page and page.startswith("<!DOCTYPE html>")
    write_page(str(tmp_path / "index.html"), "t", "b")
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]
    assert (tmp_path / "index.html").read_text() == html_page("t", "b")


def test_table_escapes_cells_except_trusted_columns_and_right_aligns_numbers():
    html = table(["name", "n", "link"], [{"name": EVIL, "n": 3, "link": "<a href=x>x</a>"},
                                         {"name": "b", "link": ""}], trusted=("link",))
    assert "<script>" not in html and "<a href=x>x</a>" in html
    assert '<td class="n">3</td>' in html and "None" not in html


def test_a_missing_trusted_cell_is_left_empty():
    assert "None" not in table(["link"], [{}], trusted=("link",))


def test_headline_skips_figures_without_a_value():
    html = headline([("accuracy", 0.5, ""), ("auc", None, ""), (EVIL, 1, "<i>note</i>")])
    assert html.count('class="card"') == 2 and "auc" not in html
    assert "<script>" not in html and "<i>note</i>" in html


def test_thumbnails_are_written_small_or_refused_for_what_is_not_an_image(tmp_path):
    Image.new("RGB", (400, 200), "red").save(tmp_path / "big.png")
    (tmp_path / "text.jpg").write_text("not an image")
    assert thumbnail(str(tmp_path / "big.png"), str(tmp_path / "thumbs" / "a.jpg"), side=64)
    assert Image.open(tmp_path / "thumbs" / "a.jpg").size == (64, 32)
    assert not thumbnail(str(tmp_path / "text.jpg"), str(tmp_path / "thumbs" / "b.jpg"))
    assert not thumbnail(str(tmp_path / "missing.jpg"), str(tmp_path / "thumbs" / "c.jpg"))


def test_thumbnail_grid_escapes_sources_alts_and_captions():
    html = thumbnail_grid([(f"thumbs/{EVIL}.jpg", EVIL, [EVIL, 3]), ("", "none", ["x"])])
    assert "<script>" not in html and html.count('class="tile"') == 2
    assert "(no image)" in html
