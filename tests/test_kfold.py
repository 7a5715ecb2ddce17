import json

import numpy as np
import pytest

from jobs import train_head
from pipeline.training.folds import assign_folds


def _data():
    ids = np.repeat([f"img{i:03d}" for i in range(60)], 3)
    labels = np.repeat(np.r_[np.zeros(40, int), np.ones(20, int)], 3)
    copies = np.tile([0, 1, 2], 60)
    return ids, labels, copies


def test_folds_are_stratified_disjoint_deterministic_and_keep_copies_together():
    ids, labels, copies = _data()
    fold = assign_folds(ids, labels, copies, 4, seed=1)
    np.testing.assert_array_equal(fold, assign_folds(ids, labels, copies, 4, seed=1))
    assert not np.array_equal(fold, assign_folds(ids, labels, copies, 4, seed=2))
    for image in np.unique(ids):
        assert len(set(fold[ids == image])) == 1
    clean = copies == 0
    for k in range(4):
        assert np.bincount(labels[clean & (fold == k)], minlength=2).tolist() == [10, 5]
    assert sorted(set(fold.tolist())) == [0, 1, 2, 3]


def test_too_many_folds_are_refused():
    ids, labels, copies = _data()
    with pytest.raises(ValueError, match="folds: expected at most 20"):
        assign_folds(ids, labels, copies, 21, seed=1)


def test_kfold_job_reports_every_fold_and_the_baseline(real_cache, tmp_path):
    tmp_path = tmp_path / "new_folder"
    (report,) = train_head.run(["--cache", real_cache, "--out", str(tmp_path), "--quiet",
                                "--head", "logistic", "--folds", "4"])
    saved = json.loads((tmp_path / "report.json").read_text())
    assert len(saved["folds"]) == 4 and sum(f["images"] for f in saved["folds"]) == 40
    assert saved["num_examples"] == 40
    assert saved["majority_baseline"] == pytest.approx(0.5)
    assert set(saved["cv"]) >= {"accuracy", "macro_f1", "roc_auc"}
    assert np.isclose(saved["cv"]["accuracy"]["mean"],
                      np.mean([f["accuracy"] for f in saved["folds"]]))
    assert "4-fold cross-validation" in (tmp_path / "index.html").read_text()
    assert saved["title"].startswith("mobilenet + logistic head on genki")  # the data's name
    assert saved["title"].endswith("(4-fold cross-validation over 100 % of the images)")
    assert (tmp_path / "folds.csv").is_file()
