"""The numbers of a report as HTML tables that lead to their images: the confusion matrix, the
per-class table and the most confused pairs.

`confusion_table` draws the matrix with each cell coloured by its share of the true class (the
blue scale of `confusion_matrix.png`) and, where the images are known (`Links`, from
`pipeline.reports.cells`), a link to them; `class_table` and `pairs_table` link the per-class
rows and the pairs the same way. Beyond 12 classes the columns are numbered and the names cut
short (the full name on hover), so that 40 classes fit at 1280 px.
"""
import html
from typing import NamedTuple

import numpy as np

from pipeline.reports.pages import table

__all__ = ["STYLE", "Links", "link", "confusion_table", "class_table", "pairs_table"]

_NAMED_COLUMNS = 12
#: The blue scale of `confusion_matrix.png` (matplotlib's "Blues"): share -> RGB stops.
_HEAT = ((0.0, (247, 251, 255)), (0.5, (107, 174, 214)), (1.0, (8, 48, 107)))
#: The matrix table's and the image pages' styles.
STYLE = """
.matrix{max-width:100%;overflow-x:auto;margin:8px 0}
table.cm{border-collapse:collapse;margin:0;font-size:13px}
table.cm td,table.cm th{border:1px solid #fff;padding:3px 6px;text-align:center;
white-space:nowrap;overflow-wrap:normal;font-variant-numeric:tabular-nums}
table.cm.small{font-size:11px}
table.cm.small td,table.cm.small th{padding:2px 1px;min-width:21px}
table.cm th{font-weight:500}table.cm tr>th:first-child{text-align:left;padding-right:6px}
table.cm .nm{display:inline-block;max-width:14em;overflow:hidden;text-overflow:ellipsis;
vertical-align:bottom}
table.cm tr:first-child .nm{max-width:6em}
table.cm td a{color:inherit}table.cm td.d{font-weight:700}
.scale{display:inline-block;width:120px;height:10px;vertical-align:middle;
background:linear-gradient(90deg,#f7fbff,#6baed6,#08306b)}
.thumbs img{width:96px;height:96px;object-fit:contain;background:#eee;display:block}
"""


class Links(NamedTuple):
    """Where the images of the report's numbers are: hrefs relative to the report folder.

    Attributes:
        cells: `{(true index, predicted index): href}` of the non-empty confusion cells.
        classes: `{true index: href}` of the classes with images.
    """
    cells: dict
    classes: dict


def link(href, text):
    """`text` escaped, inside a link to `href` when there is one."""
    text = html.escape(str(text))
    return f'<a href="{html.escape(href)}">{text}</a>' if href else text


def _heat(share):
    """The background and text colours of a cell whose share of its true class is `share`."""
    (low, start), (high, end) = next(
        (a, b) for a, b in zip(_HEAT, _HEAT[1:]) if share <= b[0])
    weight = (share - low) / (high - low)
    rgb = ",".join(str(round(a + (b - a) * weight)) for a, b in zip(start, end))
    return f"rgb({rgb})", "#fff" if share > 0.5 else "#1f2328"


def _name(text):
    return f'<span class="nm">{text}</span>'


def confusion_table(confusion, class_names, *, links=None):
    """The confusion matrix as a coloured HTML table (trusted HTML, its texts escaped).

    Rows are true classes, columns predicted ones; a cell's colour is its share of the true class
    and its count links to its images where `links` has them. Beyond 12 classes the columns are
    numbered (the rows say which name each number is, and every header has its full name as a
    tooltip), and the table scrolls inside its own box rather than widen the page.

    Args:
        confusion: counts (n, n), rows true, columns predicted.
        class_names: the n class names.
        links: where the cells' and classes' images are. Defaults to None (no links).
    """
    links = links or Links({}, {})
    confusion = np.asarray(confusion)
    shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    numbered = len(class_names) > _NAMED_COLUMNS
    head = "".join(f'<th title="{html.escape(name)}">'
                   f'{index + 1 if numbered else _name(html.escape(name))}</th>'
                   for index, name in enumerate(class_names))
    rows = []
    for t, name in enumerate(class_names):
        label = f"{t + 1} {name}" if numbered else name
        cells = "".join(_cell(confusion[t, p], shares[t, p], links.cells.get((t, p)),
                              name, predicted, diagonal=t == p)
                        for p, predicted in enumerate(class_names))
        rows.append(f'<tr><th title="{html.escape(name)}">'
                    f'{_name(link(links.classes.get(t), label))}</th>{cells}</tr>')
    hint = " Each count links to its images." if links.cells else ""
    return (f"<style>{STYLE}</style>"
            f'<div class="matrix"><table class="cm{" small" if numbered else ""}">'
            f"<tr><th>true \\ predicted</th>{head}</tr>{''.join(rows)}</table></div>"
            f'<p class="sub">Colour: share of the true class, 0 <span class="scale"></span> 1.'
            f"{hint}</p>")


def _cell(count, share, href, true, predicted, *, diagonal):
    background, ink = _heat(float(share))
    tip = f"true {true}, predicted {predicted}: {count:,} ({share:.4f} of {true})"
    css = ' class="d"' if diagonal else ""
    text = link(href, f"{count:,}") if count else "0"
    return (f'<td{css} style="background:{background};color:{ink if count else "#b1bac4"}" '
            f'title="{html.escape(tip)}">{text}</td>')


def class_table(per_class, class_names, *, links=None):
    """The per-class table (precision, recall, F1, support); each class links to its images.

    Args:
        per_class: `{name: {precision, recall, f1, support}}`, as in `report.json`.
        class_names: the class names, in the matrix's order.
        links: see `confusion_table`. Defaults to None (no links).
    """
    links = links or Links({}, {})
    index = {name: i for i, name in enumerate(class_names)}
    return table(["class", "precision", "recall", "f1", "support"],
                 [{**row, "class": link(links.classes.get(index[name]), name)}
                  for name, row in per_class.items()], trusted=("class",))


def pairs_table(most_confused, class_names, *, links=None):
    """The most confused pairs (`report.json`'s `most_confused`), each linked to its images."""
    links = links or Links({}, {})
    index = {name: i for i, name in enumerate(class_names)}
    hrefs = [links.cells.get((index[row["true"]], index[row["predicted"]]))
             for row in most_confused]
    rows = [{**row, "images": link(href, "images") if href else ""}
            for row, href in zip(most_confused, hrefs)]
    return table(["true", "predicted", "count", "share_of_true", "images"], rows,
                 trusted=("images",))
