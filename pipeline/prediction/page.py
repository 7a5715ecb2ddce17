"""The page of a batch-prediction run: `index.html` for the people who read its output.

The driver aggregates small per-shard summaries and hands them to `write_predict_page`, which lays
them out with the house building blocks (`pipeline.reports.pages`): headline counts, the count
and share per predicted class, a histogram of the predicted class's probability
(`confidence.png`), the lowest-confidence images as a thumbnail grid (the queue to review or
label next, thumbnails in `thumbs/`) and what was skipped. Every text from data is escaped and
no path is shown: images are named by their id.
"""
import html
import os

from matplotlib.figure import Figure

from pipeline.files import write_bytes_atomic
from pipeline.reports.figures import save_figure
from pipeline.reports.pages import headline, table, thumbnail_grid, write_page

__all__ = ["write_predict_page"]

_MAX_SKIPPED = 50
_TOP_K_SHOWN = 3


def _histogram_png(out_dir, histogram):
    """Draws the histogram into `confidence.png`; returns its `<img>` HTML, or a note if empty."""
    if not histogram or not sum(histogram):
        return "<p>No predictions.</p>"
    fig = Figure(figsize=(6.4, 3.0), layout="constrained")
    ax = fig.add_subplot()
    width = 1.0 / len(histogram)
    bars = ax.bar([i * width for i in range(len(histogram))], histogram, width=width,
                  align="edge", color="#4c78a8", edgecolor="white")
    if len(histogram) <= 20:
        ax.bar_label(bars, labels=[f"{count:,}" if count else "" for count in histogram],
                     fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability of the predicted class")
    ax.set_ylabel("images")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    save_figure(fig, os.path.join(out_dir, "confidence.png"))
    return ('<a href="confidence.png"><img src="confidence.png" '
            'alt="histogram of the probability of the predicted class"></a>')


def _class_table(class_names, per_class):
    names = list(class_names) + [n for n in per_class if n not in set(class_names)]
    total = max(sum(per_class.values()), 1)
    order = sorted(range(len(names)), key=lambda i: (-per_class.get(names[i], 0), i))
    return table(["class", "images", "share"], [
        {"class": names[i], "images": int(per_class.get(names[i], 0)),
         "share": per_class.get(names[i], 0) / total} for i in order])


def _tiles(out_dir, lowest):
    """The review queue as grid tiles; writes each thumbnail to `thumbs/NNNN.jpg`."""
    tiles = []
    for rank, row in enumerate(lowest):
        src = ""
        if row.get("thumbnail"):
            src = f"thumbs/{rank:04d}.jpg"
            os.makedirs(os.path.join(out_dir, "thumbs"), exist_ok=True)
            write_bytes_atomic(os.path.join(out_dir, src), row["thumbnail"])
        lines = [f"#{rank + 1} {row['id']}",
                 f"predicted: {row['label']} ({row['probability']:.4f})"]
        if row.get("true_label") and row["true_label"] != row["label"]:
            lines.append(f"✗ true: {row['true_label']}")
        top = [f"{label} {prob:.3f}" for label, prob in (row.get("top_k") or [])[:_TOP_K_SHOWN]]
        if top:
            lines.append("top: " + ", ".join(top))
        tiles.append((src, str(row["id"]), lines))
    return thumbnail_grid(tiles) if tiles else "<p>No images.</p>"


def _skipped(skipped):
    if not skipped:
        return "<p>Nothing was skipped.</p>"
    shown = table(["id", "reason"], [{"id": str(s["id"]), "reason": str(s["reason"])}
                                     for s in skipped[:_MAX_SKIPPED]])
    more = len(skipped) - _MAX_SKIPPED
    return shown + (f'<p class="sub">{more:,} more not shown.</p>' if more > 0 else "")


def write_predict_page(out_dir, *, title, class_names, per_class, histogram, lowest, counts,
                       skipped, subtitle=""):
    """Writes `index.html`, `confidence.png` and `thumbs/*.jpg` of a prediction run into out_dir.

    Args:
        out_dir: the run's output folder (created if missing).
        title: the page title: names, never absolute paths.
        class_names: the model's classes.
        per_class: {class name: images predicted as it}, every class of `class_names`.
        histogram: counts of the predicted class's probability in `len(histogram)` equal bins
            over [0, 1].
        lowest: the lowest-confidence images, ascending probability: dicts with `id`, `label`,
            `probability`, `true_label` (`""` if unknown), `top_k` ([[label, prob]]) and
            `thumbnail` (small JPEG bytes, or None).
        counts: {"listed", "predicted", "reused", "skipped"}: numbers of images.
        skipped: [{"id", "path", "reason"}]; the first 50 are shown, by id and reason only.
        subtitle: a line under the title (escaped). Defaults to `""`.

    Returns:
        The path of `index.html`.
    """
    os.makedirs(out_dir, exist_ok=True)
    cards = headline([
        ("images listed", counts.get("listed"), ""),
        ("predicted", counts.get("predicted"), ""),
        ("reused", counts.get("reused"), ""),
        ("skipped", counts.get("skipped"), ""),
        ("classes", len(class_names), ""),
        ("lowest probability", float(lowest[0]["probability"]) if lowest else None,
         html.escape(str(lowest[0]["label"])) if lowest else "")])
    per_class_html = _class_table(class_names, per_class)
    figure = _histogram_png(out_dir, histogram)
    queue = [f"<h2>Lowest confidence: review or label these next ({len(lowest):,})</h2>",
             _tiles(out_dir, lowest)]
    if len(class_names) <= 20:
        parts = ["<h2>Predicted classes and confidence</h2>",
                 f'<div class="row"><div>{per_class_html}</div><div>{figure}</div></div>', *queue]
    else:  # the long table goes after the review queue
        parts = ["<h2>Confidence of the predicted class</h2>", figure, *queue,
                 "<h2>Predicted classes</h2>", per_class_html]
    body = "".join([cards, *parts, f"<h2>Skipped ({len(skipped):,})</h2>", _skipped(skipped)])
    path = os.path.join(out_dir, "index.html")
    write_page(path, title, body, subtitle=subtitle)
    return path
