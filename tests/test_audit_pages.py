"""The audit's pages and CSV files: every listed item shows, escaped, with a thumbnail made once."""
import csv

import numpy as np
import pytest

from pipeline.evaluation.audit import AuditData
from pipeline.evaluation.audit_pages import write_csvs, write_detail_pages, write_index
from pipeline.features import cache

EVIL = "<img src=x onerror=alert(1)>.jpg"


@pytest.fixture
def audit(faces, tmp_path):
    ids = np.array(["neutral/neutral_0000.jpg", f"smiling/{EVIL}"])
    records = cache.FeatureSplit(ids, np.zeros((2, 4), np.float32), np.array([0, 1]),
                                 np.array([0, 0]), np.array(["d0", "d1"]))
    paths = [f"{faces}/neutral/neutral_0000.jpg", str(tmp_path / "missing.jpg")]
    data = AuditData(records, np.array(["train", "val"]), ["neutral", "smiling"], paths)
    issue = {"rank": 1, "index": 1, "id": ids[1], "path": paths[1], "given_label": "smiling",
             "suggested_label": "neutral", "label_quality": 0.01, "is_label_issue": True}
    found = {"label_issues": [issue, {**issue, "rank": 2, "index": 0, "is_label_issue": False}],
             "near_duplicates": [{"set": 0, "kind": "exact", "distance": 0.0, "members": [0, 1],
                                  "ids": list(ids), "classes": ["neutral", "smiling"],
                                  "splits": ["train", "val"], "leak": True,
                                  "label_conflict": True}],
             "outliers": [{"rank": 1, "index": 0, "id": ids[0], "path": paths[0],
                           "label": "neutral", "outlier_score": 0.5}],
             "label_error_pairs": [{"given_label": "smiling", "true_label": "neutral",
                                    "estimated_errors": 1.0}]}
    out = tmp_path / "audit"
    out.mkdir()
    return out, data, found


def test_detail_pages_escape_ids_flag_leaks_and_thumbnail_what_can_be_read(audit):
    out, data, found = audit
    write_detail_pages(str(out), data, EVIL, found)
    labels = (out / "label_issues.html").read_text()
    assert "<img src=x" not in labels and "suggested: neutral" in labels
    assert "#2" not in labels  # only images flagged as label issues
    duplicates = (out / "near_duplicates.html").read_text()
    assert "LEAK across splits" in duplicates and "LABEL CONFLICT" in duplicates
    assert "<img src=x" not in duplicates and "(no image)" in duplicates  # a missing file
    assert sorted(p.name for p in (out / "thumbs").iterdir()) == ["000000.jpg"]
    assert "score 0.5000" in (out / "outliers.html").read_text()


def test_empty_findings_say_nothing_was_found(audit):
    out, data, _ = audit
    write_detail_pages(str(out), data, "t", {"label_issues": [], "near_duplicates": [],
                                             "outliers": []})
    for name in ("near_duplicates.html", "outliers.html"):
        assert "Nothing found." in (out / name).read_text()


def test_csvs_hold_every_row_with_joined_members(audit):
    out, _, found = audit
    write_csvs(str(out), found)
    with open(out / "label_issues.csv", newline="") as handle:
        assert [row["rank"] for row in csv.DictReader(handle)] == ["1", "2"]
    with open(out / "near_duplicates.csv", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["ids"] == f"neutral/neutral_0000.jpg;smiling/{EVIL}" and row["leak"] == "True"
    assert (out / "outliers.csv").is_file() and (out / "label_error_pairs.csv").is_file()


def test_index_shows_the_headline_counts_and_links(audit):
    out, _, _ = audit
    report = {"num_images": 2, "num_label_issues": 1, "estimated_label_errors": 1.0,
              "num_duplicate_sets": 1, "num_exact_duplicate_sets": 1, "leaks": [1],
              "label_conflicts": [1], "num_outliers": 1, "out_of_fold_accuracy": 0.5,
              "label_error_pairs": [{"given_label": EVIL, "true_label": "neutral",
                                     "estimated_errors": 1.0}],
              "cache_key": "abc", "config": {"folds": 3, "head": "logistic"},
              "created": "today"}
    write_index(str(out), EVIL, report)
    page = (out / "index.html").read_text()
    assert "<img src=x" not in page and "3-fold logistic heads" in page
    for link in ("label_issues.html", "near_duplicates.html", "outliers.html", "report.json"):
        assert f'href="{link}"' in page
