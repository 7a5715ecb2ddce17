"""The audit's pages and CSV files: every listed item shows, escaped, with a thumbnail made once."""
import csv
import re

import numpy as np
import pytest

from pipeline.evaluation.audit import AuditData
from pipeline.evaluation.audit_pages import (summary_line, write_csvs, write_detail_pages,
                                             write_index)
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


def test_shown_label_issues_are_numbered_in_turn_with_a_fixed_point_quality(audit):
    out, data, found = audit
    issue = found["label_issues"][0]
    found["label_issues"] = [{**issue, "rank": 1, "label_quality": 7.88e-05},
                             {**issue, "rank": 2, "is_label_issue": False},
                             {**issue, "rank": 3, "index": 0}]
    write_detail_pages(str(out), data, "t", found)
    page = (out / "label_issues.html").read_text()
    assert "#1 " in page and "#2 " in page and "#3 " not in page  # the third row shown second
    assert "quality 0.0001" in page and "e-05" not in page


def test_the_summary_line_counts_in_words():
    one = {**REPORT, "num_images": 1, "estimated_label_errors": 13.0, "num_outliers": 1}
    assert summary_line(one) == (
        "1 image: 1 label issue (cleanlab estimates 13 label errors), 1 duplicate set (1 exact; "
        "1 leaking across splits, 1 under two classes), 1 outlier; out-of-fold accuracy 0.5000")
    two = {**REPORT, "num_images": 2_000, "num_label_issues": 2, "estimated_label_errors": 0.6,
           "num_duplicate_sets": 0, "num_outliers": 0}
    assert summary_line(two).startswith(
        "2,000 images: 2 label issues (cleanlab estimates 1 label error), 0 duplicate sets")
    assert summary_line(two).endswith(", 0 outliers; out-of-fold accuracy 0.5000")


def test_the_index_lists_only_class_pairs_with_estimated_errors(audit):
    out, _, _ = audit
    pairs = [{"given_label": f"g{i}", "true_label": f"t{i}", "estimated_errors": errors}
             for i, errors in enumerate([3.5] * 22 + [0.0] * 13)]
    write_index(str(out), "t", {**REPORT, "estimated_label_errors": 77.0,
                                "label_error_pairs": pairs})
    page = (out / "index.html").read_text()
    assert len(re.findall(r">g\d+<", page)) == 20 and "0.0000" not in page
    assert "Not shown: 2 more with fewer estimated errors; 13 class pairs with none" in page
    assert "cleanlab estimates 77 label errors" in page


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


REPORT = {"num_images": 2, "num_label_issues": 1, "estimated_label_errors": 1.0,
          "num_duplicate_sets": 1, "num_exact_duplicate_sets": 1, "leaks": [1],
          "label_conflicts": [1], "num_outliers": 1, "out_of_fold_accuracy": 0.5,
          "label_error_pairs": [{"given_label": EVIL, "true_label": "neutral",
                                 "estimated_errors": 1.0}],
          "cache_key": "abc", "config": {"folds": 3, "head": "logistic"}, "created": "today"}


def test_index_shows_the_headline_counts_and_links(audit):
    out, _, _ = audit
    report = REPORT
    write_index(str(out), EVIL, report)
    page = (out / "index.html").read_text()
    assert "<img src=x" not in page and "3-fold logistic heads" in page
    for link in ("label_issues.html", "near_duplicates.html", "outliers.html", "report.json"):
        assert f'href="{link}"' in page
