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
