"""The figures of a report, drawn with matplotlib; each function returns its figure.

Every figure adapts to the number of classes (2 to about 100) and of runs (1 to about 500):
`confusion_figure` grows with the classes, rotates its tick labels and writes a cell's count only
where it fits; `trend_figure` puts dates on its axis and drops markers when runs crowd.

The figures are `matplotlib.figure.Figure`s on their own Agg canvas, never pyplot's: drawing
selects no global backend and keeps no figure alive once it is saved. The one picture of
pictures, `thumbnail_grid_image`, is laid out by Pillow instead.
"""
import datetime
import os

import matplotlib.dates as mdates
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn import metrics

from pipeline.files import atomic_output

__all__ = ["confusion_figure", "reliability_figure", "reliability_bins", "roc_curves",
           "roc_pr_figure", "thumbnail_grid_image", "trend_figure", "recall_trend_figure",
           "save_figure", "save_image", "plot_curves"]

#: The captions' font size in `thumbnail_grid_image`: over 12 px where a report page shows the
#: grid of 5 columns (1200 px) in its 1152 px column.
_CAPTION_PIXELS = 16
_CELL_INCHES = 0.32
_MAX_FONT = 10.0


def save_figure(fig, path, *, dpi=100):
    """Saves `fig` to `path` (in the format its extension names) through a temporary file and a
    rename."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=os.path.splitext(path)[1][1:])


def _subplots(*args, figsize, **kwargs):
    """`pyplot.subplots` without pyplot: a figure on its own Agg canvas, and its axes."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(*args, **kwargs)


def confusion_figure(confusion, class_names):
    """A confusion matrix readable from 2 to 100 classes.

    Colour is the row-normalised share of each true class (with a colour bar); each cell shows its
    count where the count fits in the cell. The figure grows with the number of classes, and tick
    labels shrink and rotate so that neighbours never overlap.

    Args:
        confusion: counts (n, n), rows true, columns predicted.
        class_names: the n class names.

    Returns:
        The matplotlib figure.
    """
    confusion = np.asarray(confusion)
    n = len(class_names)
    side = float(np.clip(_CELL_INCHES * n + 3.0, 5.0, 40.0))
    fig, ax = _subplots(figsize=(side + 1.2, side))
    shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    cell_points = (side - 3.0 if n > 6 else side * 0.6) * 72 / n
    font = min(_MAX_FONT, cell_points * 0.6)
    ax.set_xticks(range(n), class_names, rotation=90 if n > 6 else 30,
                  ha="center" if n > 6 else "right", fontsize=font)
    ax.set_yticks(range(n), class_names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    _cell_counts(ax, confusion, shares, cell_points)
    fig.tight_layout()
    return fig


def _cell_counts(ax, confusion, shares, cell_points):
    for (row, col), count in np.ndenumerate(confusion):
        text = str(count)
        size = min(_MAX_FONT, cell_points / max(len(text), 2) * 1.1)
        if count and size >= 5:
            ax.text(col, row, text, ha="center", va="center", fontsize=size,
                    color="white" if shares[row, col] > 0.5 else "black")


def reliability_bins(y_true, proba, *, bins=10):
    """Confidence of the predicted class against its accuracy, in equal-width bins.

    Returns:
        `(rows, ece)`: rows of (low, high, count, mean confidence, accuracy) for non-empty bins,
        and the expected calibration error (count-weighted mean |accuracy - confidence|).
    """
    confidence = np.max(proba, axis=1)
    correct = np.argmax(proba, axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append((edges[b], edges[b + 1], int(mask.sum()),
                         float(confidence[mask].mean()), float(correct[mask].mean())))
            ece += mask.mean() * abs(rows[-1][4] - rows[-1][3])
    return rows, float(ece)


def reliability_figure(rows, ece, *, bins=10):
    """A reliability diagram: accuracy per confidence bin against the diagonal.

    Args:
        rows, ece: what `reliability_bins` returns (or `summaries.reliability_rows`).
        bins: the bin count they were made with. Defaults to `10`.
    """
    fig, ax = _subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", label="perfectly calibrated")
    ax.bar([(r[0] + r[1]) / 2 for r in rows], [r[4] for r in rows], width=1.0 / bins,
           edgecolor="black", alpha=0.7, label="accuracy")
    ax.plot([r[3] for r in rows], [r[4] for r in rows], "o-", color="C1",
            label="accuracy at mean confidence")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the predicted class")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.4f})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def roc_curves(y_true, scores):
    """The exact ROC and precision-recall curves of a two-class problem, as
    `summaries.roc_pr_curves` gives them from histograms: `fpr`, `tpr`, `precision`, `recall`,
    `roc_auc`, `average_precision`."""
    fpr, tpr, _ = metrics.roc_curve(y_true, scores)
    precision, recall, _ = metrics.precision_recall_curve(y_true, scores)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "precision": precision.tolist(),
            "recall": recall.tolist(), "roc_auc": float(metrics.auc(fpr, tpr)),
            "average_precision": float(metrics.average_precision_score(y_true, scores))}


def roc_pr_figure(curves, *, positive="positive", prevalence=None):
    """ROC and precision-recall curves of a two-class problem (`curves`: see `roc_curves`)."""
    fig, (roc_ax, pr_ax) = _subplots(1, 2, figsize=(10, 4.5))
    roc_ax.plot(curves["fpr"], curves["tpr"], label=f"{positive} (AUC = {curves['roc_auc']:.2f})")
    roc_ax.plot([0, 1], [0, 1], "k--", label="chance level (AUC = 0.5)")
    roc_ax.set_xlabel("false positive rate")
    roc_ax.set_ylabel("true positive rate")
    pr_ax.step(curves["recall"], curves["precision"], where="post",
               label=f"{positive} (AP = {curves['average_precision']:.2f})")
    if prevalence is not None:
        pr_ax.axhline(prevalence, color="k", linestyle="--",
                      label=f"chance level (AP = {prevalence:.2f})")
    pr_ax.set_xlabel("recall")
    pr_ax.set_ylabel("precision")
    for ax, name in ((roc_ax, "ROC"), (pr_ax, "precision-recall")):
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_title(name)
        ax.legend(loc="lower right" if ax is roc_ax else "lower left", fontsize=8)
    fig.tight_layout()
    return fig


def thumbnail_grid_image(images, captions, *, columns=5, tile=(240, 280)):
    """A grid of thumbnails with a caption over each (fastai's `plot_top_losses` layout), laid
    out by Pillow: a tenth of the time of drawing it with matplotlib, for a picture of pictures.

    Args:
        images: arrays (h, w, 3) or None (drawn as an empty cell).
        captions: one string per image (lines separated by `\\n`).
        columns: cells per row. Defaults to `5`.
        tile: a cell's (width, height) in pixels. Defaults to `(240, 280)`.

    Returns:
        A `PIL.Image.Image` (RGB).
    """
    from PIL import Image, ImageDraw, ImageFont

    columns = max(1, min(columns, len(images)))
    rows = max(1, -(-len(images) // columns))
    width, height = tile
    canvas = Image.new("RGB", (width * columns, height * rows), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=_CAPTION_PIXELS)
    caption_height = 2 * _CAPTION_PIXELS + 12
    for index, (image, caption) in enumerate(zip(images, captions)):
        left, top = (index % columns) * width, (index // columns) * height
        draw.multiline_text((left + width // 2, top + 4), caption, fill="black", font=font,
                            anchor="ma", align="center")
        if image is None:
            continue
        picture = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
        box = (width - 12, height - caption_height - 8)
        scale = min(box[0] / picture.width, box[1] / picture.height)
        picture = picture.resize((max(1, round(picture.width * scale)),
                                  max(1, round(picture.height * scale))), Image.BICUBIC)
        canvas.paste(picture, (left + (width - picture.width) // 2,
                               top + caption_height + (box[1] - picture.height) // 2))
    return canvas


def save_image(image, path):
    """Saves a Pillow image to `path` (format from its extension) through a temporary file and
    a rename; a PNG at zlib level 1 (photographs barely compress further: 1.1 times the bytes
    of the default level, in a quarter of the time)."""
    with atomic_output(path) as tmp:
        image.save(tmp, format=os.path.splitext(path)[1][1:].upper(), compress_level=1)


def _dates(times):
    return [datetime.datetime.fromisoformat(t) for t in times]


#: Tick labels at each level of a date axis: year, month, day, hour, minute, second. Runs a
#: few seconds apart read `18:02:50, 18:03:00`, never a bare `50` beside `18:03`.
_DATE_FORMATS = ["%Y", "%b", "%d %b", "%H:%M", "%H:%M", "%H:%M:%S"]
_DATE_ZERO_FORMATS = ["", "%Y", "%b", "%d %b", "%H:%M", "%H:%M:%S"]


def _date_axis(ax, dates):
    locator = mdates.AutoDateLocator(minticks=2, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(
        locator, formats=_DATE_FORMATS, zero_formats=_DATE_ZERO_FORMATS))
    if len(set(dates)) == 1:
        ax.set_xlim(dates[0] - datetime.timedelta(days=1), dates[0] + datetime.timedelta(days=1))


def _default_series(row):
    return row["model"], row.get("data", "")


def _series_lines(ax, rows, metric, series, marker):
    """One line per series of `metric` (and its interval as a band where rows have one)."""
    for key in sorted({series(r) for r in rows}):
        mine = [r for r in rows if series(r) == key and r.get(metric) not in ("", None)]
        model, data = key
        line, = ax.plot(_dates([r["time"] for r in mine]), [float(r[metric]) for r in mine],
                        marker=marker, markersize=4, linewidth=1.2,
                        label=f"{model} on {data}" if data else model)
        banded = [r for r in mine if r.get(f"{metric}_low") not in ("", None)]
        if banded:
            dates = _dates([r["time"] for r in banded])
            low = [float(r[f"{metric}_low"]) for r in banded]
            high = [float(r[f"{metric}_high"]) for r in banded]
            ax.fill_between(dates, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
            ax.vlines(dates, low, high, color=line.get_color(), alpha=0.5, linewidth=1)


def _baselines(ax, rows, series):
    """The majority baseline, one dotted line per data set (it depends on the data alone)."""
    data_sets = sorted({series(r)[1] for r in rows})
    for index, data in enumerate(data_sets):
        mine = [r for r in rows if series(r)[1] == data
                and r.get("majority_baseline") not in ("", None)]
        ax.plot(_dates([r["time"] for r in mine]), [float(r["majority_baseline"]) for r in mine],
                color="gray", linestyle=(0, (1, 1 + 2 * index)),
                label="majority baseline" + (f", {data}" if len(data_sets) > 1 else ""))


def trend_figure(rows, *, metrics_=("accuracy", "macro_f1"), fail_under=None,
                 series=_default_series):
    """Metrics of every run over time, one line per series (a model on a data set) with its 95 %
    interval as a band (where runs.csv has `<metric>_low`/`_high`), and the majority baseline of
    each data set.

    Args:
        rows: runs.csv rows (dicts with `time`, `model`, the metrics, `majority_baseline`).
        metrics_: the metrics, one panel each. Defaults to accuracy and macro-F1.
        fail_under: draws this accuracy floor as a red line, or None. Defaults to `None`.
        series: a row's series, `(model name, data name)`: one line each, labelled
            `model on data` (`model` alone for an empty data name); the baseline is drawn per
            data name. Defaults to the row's `model` and `data`
            (`pipeline.reports.runs.series_key` gives display names).
    """
    fig, axes = _subplots(1, len(metrics_), figsize=(12, 4), squeeze=False)
    marker = "o" if len(rows) <= 40 else None
    for metric, ax in zip(metrics_, axes[0]):
        _series_lines(ax, rows, metric, series, marker)
        _baselines(ax, rows, series)
        if fail_under is not None and metric == "accuracy":
            ax.axhline(fail_under, color="red", linestyle="--", label=f"fail under {fail_under}")
        _date_axis(ax, _dates([r["time"] for r in rows]))
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def recall_trend_figure(times, class_names, recalls):
    """Per-class recall over runs: lines up to 10 classes, a heat map (classes x runs) beyond.

    Args:
        times: ISO time of each run.
        class_names: the classes.
        recalls: (runs, classes) recall, NaN where a run lacks the class.
    """
    recalls = np.asarray(recalls, dtype=float)
    if len(class_names) <= 10:
        fig, ax = _subplots(figsize=(12, 3.8))
        dates = _dates(times)
        for index, name in enumerate(class_names):
            ax.plot(dates, recalls[:, index], marker="o" if len(times) <= 40 else None,
                    markersize=3, label=name)
        _date_axis(ax, dates)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7, ncol=min(5, len(class_names)), loc="lower left")
        ax.grid(alpha=0.3)
    else:
        fig, ax = _subplots(figsize=(12, min(20.0, 2.0 + 0.18 * len(class_names))))
        image = ax.imshow(recalls.T, aspect="auto", cmap="RdYlGn", vmin=0, vmax=1,
                          interpolation="nearest")
        ax.set_yticks(range(len(class_names)), class_names, fontsize=min(8.0, 600 / len(
            class_names)))
        step = max(1, len(times) // 8)
        ax.set_xticks(range(0, len(times), step), [t[:10] for t in times[::step]], fontsize=8)
        fig.colorbar(image, ax=ax, label="recall")
    ax.set_title("per-class recall over runs")
    fig.tight_layout()
    return fig


def plot_curves(history, *, phases=None, ax=None):
    """Draws accuracy and loss per epoch; `phases` is [(name, first epoch)], drawn as markers.

    Returns:
        The matplotlib figure.
    """
    if ax is None:
        fig, ax = _subplots(1, 2, figsize=(11, 4))
    else:
        fig = ax[0].figure
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for axis, metric in zip(ax, ("accuracy", "loss")):
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            if history.get(key):
                axis.plot(epochs[:len(history[key])], history[key], marker=".", label=label)
        for name, start in (phases or [])[1:]:
            axis.axvline(start - 0.5, color="gray", linestyle="--")
            axis.annotate(name, (start - 0.5, 0.02), xycoords=("data", "axes fraction"),
                          rotation=90, color="gray")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    fig.tight_layout()
    return fig
