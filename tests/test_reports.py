import csv
import json

import numpy as np
import pytest

from pipeline.reports import compute_metrics, most_wrong, write_report

NAMES = ["cat", "dog <&>"]


@pytest.fixture
def predictions():
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.95, 0.05],
                      [0.1, 0.9], [0.55, 0.45]])
    return np.array([f"x/{i}.jpg" for i in range(7)]), y, proba


def test_metrics_match_hand_counts(predictions):
    _, y, proba = predictions
    result = compute_metrics(y, proba, NAMES)
    assert result["confusion_matrix"] == [[2, 1], [2, 2]]
    assert result["accuracy"] == pytest.approx(4 / 7)
    assert result["per_class"]["cat"]["precision"] == pytest.approx(2 / 4)
    assert result["per_class"]["dog <&>"]["recall"] == pytest.approx(2 / 4)
    assert result["majority_baseline"] == pytest.approx(4 / 7)
    assert 0 <= result["roc_auc"] <= 1


def test_most_wrong_holds_only_mistakes_sorted_by_confidence(predictions):
    ids, y, proba = predictions
    rows = most_wrong(ids, y, proba, NAMES)
    assert [r["id"] for r in rows] == ["x/4.jpg", "x/1.jpg", "x/6.jpg"]
    assert all(r["true"] != r["predicted"] for r in rows)
    confidences = [r["confidence"] for r in rows]
    assert confidences == sorted(confidences, reverse=True)
    assert len(most_wrong(ids, y, proba, NAMES, top_n=2)) == 2


def test_report_files_hold_the_right_numbers(predictions, tmp_path, faces):
    ids, y, proba = predictions
    paths = [f"{faces}/neutral/neutral_000{i}.jpg" for i in range(7)]
    history = {"loss": [0.7, 0.5, 0.4], "val_loss": [0.7, 0.6, 0.6],
               "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.5, 0.6, 0.6]}
    report = write_report(tmp_path, ids=ids, y_true=y, proba=proba, class_names=NAMES,
                          paths=paths, history=history, phases=[("head", 1), ("fine-tune", 3)],
                          config={"lr": 0.1}, extra={"cache_key": "abc"}, clock=lambda: 0)
    for name in ("index.html", "report.json", "confusion_matrix.png", "confusion_matrix.csv",
                 "per_class.csv", "curves.png", "most_wrong.csv", "most_wrong.html"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["accuracy"] == pytest.approx(4 / 7) and saved["cache_key"] == "abc"
    assert saved["config"] == {"lr": 0.1} and saved["created"].startswith("1970-01-01")
    assert sum(map(sum, saved["confusion_matrix"])) == len(y)
    with open(tmp_path / "confusion_matrix.csv") as handle:
        rows = list(csv.reader(handle))
    assert sum(int(v) for row in rows[1:] for v in row[1:]) == len(y)
    with open(tmp_path / "most_wrong.csv") as handle:
        wrong = list(csv.DictReader(handle))
    assert len(wrong) == 3 and wrong[0]["id"] == "x/4.jpg"
    page = (tmp_path / "most_wrong.html").read_text()
    assert "dog &lt;&amp;&gt;" in page and "dog <&>" not in page
    assert 'src="thumbs/0001.jpg"' in page and (tmp_path / "thumbs" / "0001.jpg").is_file()
    assert report["most_wrong"][0]["rank"] == 1


def test_report_without_history_or_paths(predictions, tmp_path):
    ids, y, proba = predictions
    write_report(tmp_path, ids=ids, y_true=y, proba=proba, class_names=NAMES)
    assert not (tmp_path / "curves.png").exists()
    assert "(no image)" in (tmp_path / "most_wrong.html").read_text()


def _separable(num_classes, per_class=12, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), per_class)
    logits = rng.normal(size=(len(y), num_classes))
    logits[np.arange(len(y)), y] += 2.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def _overlaps(labels):
    boxes = [label.get_window_extent() for label in labels if label.get_text()]
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]


def test_forty_classes_have_macro_auc_top5_and_legible_ticks(tmp_path):
    from sklearn.metrics import roc_auc_score

    from pipeline.reports.figures import confusion_figure

    names = [f"class {i:02d} {'with a long name' if i % 4 == 0 else ''}" for i in range(40)]
    y, proba = _separable(40)
    report = write_report(tmp_path, ids=np.arange(len(y)), y_true=y, proba=proba,
                          class_names=names)
    assert report["roc_auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr"))
    assert 0 < report["top5_accuracy"] <= 1 and "thresholds" not in report
    assert (tmp_path / "most_confused.csv").is_file() and "Most confused pairs" in (
        tmp_path / "index.html").read_text()
    fig = confusion_figure(report["confusion_matrix"], names)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert _overlaps(ax.get_xticklabels()) == [] and _overlaps(ax.get_yticklabels()) == []
    assert len(fig.axes) == 2  # the colour bar


def test_crowded_ticks_would_be_caught():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 3))
    ax.set_xticks(range(40), [f"class {i}" for i in range(40)])
    fig.canvas.draw()
    assert _overlaps(ax.get_xticklabels())
    plt.close(fig)


def test_two_classes_get_curves_thresholds_and_calibration(predictions, tmp_path):
    ids, y, proba = predictions
    report = write_report(tmp_path, ids=ids, y_true=y, proba=proba, class_names=NAMES)
    assert {"roc_pr.png", "reliability.png", "thresholds.csv", "most_wrong.png"} <= set(
        p.name for p in tmp_path.iterdir())
    assert [r["threshold"] for r in report["thresholds"]][4] == 0.5
    assert report["thresholds"][4]["recall"] == pytest.approx(2 / 4)
    assert 0 <= report["ece"] <= 1 and "top5_accuracy" not in report


def test_report_json_keys(predictions, tmp_path):
    ids, y, proba = predictions
    write_report(tmp_path, ids=ids, y_true=y, proba=proba, class_names=NAMES)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert {"accuracy", "macro_f1", "roc_auc", "majority_baseline", "per_class",
            "confusion_matrix", "most_wrong", "config", "created", "class_names", "ece",
            "most_confused", "thresholds", "num_examples", "title"} <= set(saved)
    page = (tmp_path / "index.html").read_text()
    assert "None" not in page and "cache key" not in page


EVIL = "<img src=x onerror=alert(1)>.jpg"


def test_file_names_are_escaped_on_every_page(tmp_path, faces):
    import shutil

    from pipeline.reports import runs as report_runs

    data = tmp_path / "data"
    (data / "cat").mkdir(parents=True)
    shutil.copy(f"{faces}/neutral/neutral_0000.jpg", data / "cat" / EVIL)
    ids = np.array([f"cat/{EVIL}", "cat/b.jpg"])
    paths = [str(data / "cat" / EVIL), ""]
    y, proba = np.array([0, 1]), np.array([[0.2, 0.8], [0.1, 0.9]])
    run = tmp_path / "reports" / "run1"
    write_report(run, ids=ids, y_true=y, proba=proba, class_names=["cat", "<b>dog</b>"],
                 paths=paths, title=EVIL)
    rows = [{"id": i, "path": p, "digest": "d", "true": "cat", "predicted": "<b>dog</b>",
             "confidence": 0.8} for i, p in zip(ids, paths)]
    before = {r["id"]: {**r, "predicted": "cat"} for r in rows}
    report_runs.write_changes(run, report_runs.diff_runs(before, {r["id"]: r for r in rows}),
                              previous_run="<run0>", title=EVIL)
    report_runs.update_runs_index(tmp_path / "reports", {
        "time": "2026-01-01T06:00:00+0000", "model": EVIL, "data": f"/d/{EVIL}",
        "data_fingerprint": "f", "accuracy": 0.5, "macro_f1": 0.5, "majority_baseline": 0.5,
        "num_examples": 2, "run_dir": "run1"})
    pages = list((tmp_path / "reports").rglob("*.html"))
    named = {"index.html", "run1/index.html", "run1/most_wrong.html", "run1/changes.html"}
    assert named <= {p.relative_to(tmp_path / "reports").as_posix() for p in pages}
    assert len(pages) > len(named)  # and the image pages of run1/cells/ and run1/changes/
    for page in pages:
        text = page.read_text()
        assert "<img src=x" not in text and "<b>dog" not in text, page
        assert "&lt;img src=x onerror=alert(1)&gt;" in text, page


def test_the_report_says_which_classes_its_macro_f1_leaves_out(tmp_path):
    from pipeline.reports.summaries import shard_summary

    y = np.array([0] * 10 + [3] * 10)
    proba = np.full((20, 5), 0.05)
    proba[np.arange(20), y] = 0.8
    proba[0] = [0.05, 0.8, 0.05, 0.05, 0.05]  # one mistake, into a class with no image
    names = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    report = write_report(tmp_path, summary=shard_summary(y, proba), class_names=names)
    assert report["classes_absent"] == ["dandelion", "roses", "tulips"]
    low, high = report["intervals"]["macro_f1"]
    assert report["macro_f1"] > 0.9 and low <= report["macro_f1"] <= high and low > 0.8
    page = (tmp_path / "index.html").read_text()
    assert "over the 2 of 5 classes with images; none of dandelion, roses, tulips" in page
