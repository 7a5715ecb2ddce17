"""HTML building blocks of every report page: one inline stylesheet, escaping by default.

Pages open offline from disk and as e-mail attachments, so the stylesheet is inline and images are
relative files. Every text that comes from data (ids, paths, class names, titles) goes through
`html.escape`; helpers that take `trusted` HTML say so. Numbers print at 4 decimals; a field
with no value is left out rather than printed as `None`.
"""
import html
import os
import pathlib
import urllib.parse

import numpy as np
import tensorflow as tf

from pipeline.data.images import jpeg_thumbnail
from pipeline.files import write_text_atomic

__all__ = ["STYLE", "html_page", "fmt", "delta", "headline", "table", "image_href", "thumbnail",
           "thumbnail_grid", "write_page"]

_THUMB_SIDE = 128

STYLE = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
margin:0;background:#f6f8fa}
main{max-width:1200px;margin:0 auto;padding:20px 24px;background:#fff;min-height:100vh}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;
border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#57606a;margin:0 0 16px;overflow-wrap:anywhere}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;min-width:150px}
.card .v{font-size:26px;font-weight:600;font-variant-numeric:tabular-nums}
.card .k{color:#57606a;font-size:13px}.card .d{font-size:13px}
.up{color:#1a7f37}.down{color:#cf222e}.same{color:#57606a}
.flag{background:#ffebe9;border:1px solid #cf222e;border-radius:8px;padding:10px 14px;
color:#82071e;font-weight:600}
.ok{background:#dafbe1;border:1px solid #1a7f37;border-radius:8px;padding:10px 14px}
table{border-collapse:collapse;display:block;max-width:100%;overflow-x:auto;margin:8px 0}
td,th{border-bottom:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.n,.w{white-space:nowrap}
tr:nth-child(even) td{background:#fbfcfd}
img{max-width:100%;height:auto}
.grid{display:flex;flex-wrap:wrap;gap:10px}
.tile{width:150px;font-size:12px;overflow-wrap:anywhere}
.tile img{width:140px;height:140px;object-fit:contain;background:#eee;display:block}
.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.row>*{min-width:0;flex:1 1 420px}
ul.files{columns:3 220px}
"""


def html_page(title, body, *, subtitle=""):
    """A complete, self-contained HTML page; `title`/`subtitle` are escaped, `body` is trusted."""
    sub = f'<p class="sub">{html.escape(subtitle)}</p>' if subtitle else ""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main>"
            f"<h1>{html.escape(title)}</h1>{sub}{body}</main></body></html>")


def write_page(path, title, body, *, subtitle=""):
    """Writes `html_page(...)` to `path` atomically."""
    write_text_atomic(path, html_page(title, body, subtitle=subtitle))


def fmt(value):
    """A value as escaped text: floats at 4 decimals, ints with separators, None as ``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}"
    return html.escape(str(value))


def delta(value, *, lower_is_better=False):
    """A signed, coloured difference (`+0.0123`) as trusted HTML; `` for None."""
    if value is None:
        return ""
    better = value < 0 if lower_is_better else value > 0
    css = "same" if abs(value) < 5e-5 else ("up" if better else "down")
    return f'<span class="{css}">{value:+.4f}</span>'


def headline(figures):
    """Cards of headline figures: `figures` is [(label, value, trusted note HTML)]; None skipped."""
    cards = "".join(f'<div class="card"><div class="k">{html.escape(label)}</div>'
                    f'<div class="v">{fmt(value)}</div><div class="d">{note}</div></div>'
                    for label, value, note in figures if value is not None)
    return f'<div class="cards">{cards}</div>'


def table(columns, rows, *, trusted=()):
    """A table of dict rows; cells are escaped except the `trusted` columns; numbers right.

    Numbers never wrap and words never break (`STYLE`): texts wrap at their spaces and
    hyphens only, and a table wider than the page scrolls sideways.
    """
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)

    def cell(column, value):
        if column in trusted:
            return f"<td>{'' if value is None else value}</td>"
        number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        return f'<td class="n">{fmt(value)}</td>' if number else f"<td>{fmt(value)}</td>"

    body = "".join("<tr>" + "".join(cell(c, r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def image_href(path, page_dir):
    """The link from a page in `page_dir` to the image file `path`, or `""` where there is none.

    A local file gets a relative href (percent-encoded), which holds wherever the reports and
    the images move together or are served from one root, and an absolute `file:` URL where
    no relative one exists (another drive); an `http(s)` URL is its own link; other schemes
    (`gs://`, ...) and unknown files (`""`) get none.
    """
    path = str(path or "")
    if "://" in path:
        return path if path.startswith(("http://", "https://")) else ""
    if not path:
        return ""
    target = os.path.abspath(path)
    try:
        relative = os.path.relpath(target, os.path.abspath(page_dir))
    except ValueError:
        return pathlib.Path(target).as_uri()
    return urllib.parse.quote(relative.replace(os.sep, "/"))


def thumbnail(source_path, target_path, *, side=_THUMB_SIDE):
    """Writes a JPEG thumbnail (`jpeg_thumbnail`) of an image file; returns whether it could."""
    try:
        with tf.io.gfile.GFile(source_path, "rb") as handle:
            jpeg = jpeg_thumbnail(handle.read(), side=side)
    except (OSError, ValueError, tf.errors.OpError):
        return False
    if jpeg is None:
        return False
    os.makedirs(os.path.dirname(target_path), exist_ok=True)
    with open(target_path, "wb") as handle:
        handle.write(jpeg)
    return True


def thumbnail_grid(tiles):
    """A grid of tiles, escaped; each tile is `(thumb src or "", alt text, [caption lines])` or
    `(src, alt, lines, href)`, whose thumbnail then links to `href` (`image_href`; `""`: none)."""
    cells = []
    for src, alt, lines, *href in tiles:
        image = (f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">' if src
                 else '<div class="sub">(no image)</div>')
        if src and href and href[0]:
            image = f'<a href="{html.escape(href[0])}">{image}</a>'
        text = "<br>".join(html.escape(str(line)) for line in lines)
        cells.append(f'<div class="tile">{image}{text}</div>')
    return f'<div class="grid">{"".join(cells)}</div>'
