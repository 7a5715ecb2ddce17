"""Report figures: each function returns a matplotlib figure that adapts to its data."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn import metrics

from pipeline.reports import figures


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_reliability_bins_count_confidence_and_accuracy_per_bin():  # bins are (low, high]
    proba = np.array([[0.95, 0.05], [0.92, 0.08], [0.4, 0.6], [0.45, 0.55]])
    rows, ece = figures.reliability_bins([0, 1, 1, 1], proba, bins=10)
    assert [(low, count) for low, _, count, _, _ in rows] == [(pytest.approx(0.5), 2),
                                                             (pytest.approx(0.9), 2)]
    assert [accuracy for *_, accuracy in rows] == [1.0, 0.5]
    assert ece == pytest.approx(0.5 * abs(1.0 - 0.575) + 0.5 * abs(0.5 - 0.935))


def test_roc_curves_match_scikit_learn():
    y, scores = np.array([0, 0, 1, 1, 1, 0]), np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.2])
    curves = figures.roc_curves(y, scores)
    assert curves["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, scores))
    assert curves["average_precision"] == pytest.approx(metrics.average_precision_score(y, scores))
    assert len(curves["fpr"]) == len(curves["tpr"])
    fig = figures.roc_pr_figure(curves, positive="smiling", prevalence=0.5)
    assert [ax.get_title() for ax in fig.axes] == ["ROC", "precision-recall"]


@pytest.mark.parametrize("n", [2, 30])
def test_confusion_figure_grows_with_the_classes_and_writes_counts_that_fit(n):
    confusion = np.eye(n, dtype=int) * 7
    fig = figures.confusion_figure(confusion, [f"class {i}" for i in range(n)])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["7"] * n  # zero cells stay blank
    assert len(ax.get_xticklabels()) == n
    assert fig.get_size_inches()[1] == pytest.approx(max(5.0, 0.32 * n + 3.0))


def test_recall_trend_uses_lines_up_to_ten_classes_and_a_heat_map_beyond():
    times = ["2024-01-01T10:00:00", "2024-01-02T10:00:00"]
    few = figures.recall_trend_figure(times, ["a", "b"], [[0.5, 1.0], [0.6, np.nan]])
    assert len(few.axes[0].get_lines()) == 2
    many = figures.recall_trend_figure(times, [f"c{i}" for i in range(12)], np.full((2, 12), .5))
    assert len(many.axes[0].images) == 1


def test_trend_figure_draws_a_line_per_model_the_baseline_and_the_floor():
    rows = [{"time": f"2024-01-0{d}T10:00:00", "model": model, "accuracy": "0.8",
             "macro_f1": "", "majority_baseline": "0.5"} for d in (1, 2) for model in "ab"]
    fig = figures.trend_figure(rows, fail_under=0.7)
    accuracy, f1 = fig.axes[:2]
    labels = [line.get_label() for line in accuracy.get_lines()]
    assert labels == ["a", "b", "majority baseline", "fail under 0.7"]
    assert [len(line.get_xdata()) for line in f1.get_lines()] == [0, 0, 4]  # no macro-F1 values
    assert not accuracy.collections  # no intervals in these rows: no band


def test_trend_figure_draws_each_runs_interval_as_a_band():
    rows = [{"time": f"2024-01-0{d}T10:00:00", "model": "a", "accuracy": "0.8",
             "accuracy_low": "0.75", "accuracy_high": "0.85", "macro_f1": "0.7",
             "majority_baseline": "0.5"} for d in (1, 2, 3)]
    accuracy, f1 = figures.trend_figure(rows).axes[:2]
    band, bars = accuracy.collections
    assert band.get_paths()[0].vertices[:, 1].min() == pytest.approx(0.75)
    assert len(bars.get_segments()) == 3 and not f1.collections  # macro-F1 without intervals


def test_plot_curves_marks_later_phases_and_draws_on_given_axes():
    history = {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, 0.6], "accuracy": [0.5, 0.7, 0.8]}
    _, axes = plt.subplots(1, 2)
    fig = figures.plot_curves(history, phases=[("head", 1), ("fine-tune", 3)], ax=axes)
    assert fig is axes[0].figure
    accuracy, loss = axes
    assert [line.get_label() for line in loss.get_lines()][:2] == ["training", "validation"]
    assert [t.get_text() for t in accuracy.texts] == ["fine-tune"]


def test_thumbnail_grid_image_leaves_empty_cells_for_missing_images(tmp_path):
    images = [np.zeros((8, 8, 3), np.uint8), None, np.full((8, 16, 3), 128, np.uint8)]
    grid = figures.thumbnail_grid_image(images, ["a", "b", "c"], columns=2, tile=(100, 120))
    assert grid.size == (200, 240)
    pixels = np.asarray(grid)
    # The middle of each cell's picture area: cell 0 black, cell 1 (no image) white, cell 2
    # (the second row) grey.
    assert pixels[80, 50].tolist() == [0, 0, 0]
    assert pixels[80, 150].tolist() == [255, 255, 255]
    assert pixels[200, 50].tolist() == [128, 128, 128]
    figures.save_image(grid, str(tmp_path / "grid.png"))
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_thumbnail_captions_read_at_twelve_pixels_where_the_page_shows_the_grid():
    images = [np.zeros((8, 8, 3), np.uint8)] * 5
    grid = np.asarray(figures.thumbnail_grid_image(images, ["Hg"] * 5).convert("L"))
    inked = np.flatnonzero((grid[:60, :240] < 128).any(axis=1))  # the first caption's rows
    shown = min(1.0, 1152 / grid.shape[1])  # a report page's column is 1152 px wide
    assert (inked[-1] - inked[0] + 1) * shown >= 12


def test_date_axes_of_runs_seconds_apart_name_each_tick_in_full():
    times = ["2026-12-02T18:02:45", "2026-12-02T18:02:55", "2026-12-02T18:03:10",
             "2026-12-02T18:03:30"]
    fig = figures.recall_trend_figure(times, ["a", "b"], np.full((4, 2), 0.5))
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert len(labels) >= 2 and all(label.count(":") == 2 for label in labels), labels
