import json

import pytest

from jobs import train_head
from pipeline.training.heads import load_head


@pytest.mark.parametrize("head", ["dense", "logistic"])
def test_job_writes_the_contract_files(real_cache, tmp_path, head):
    out = tmp_path / head
    (report,) = train_head.run(["--cache", real_cache, "--head", head, "--out", str(out),
                                "--quiet", "--epochs", "30"])
    saved = json.loads((out / "report.json").read_text())
    assert saved["accuracy"] == report["accuracy"]
    assert saved["num_examples"] == sum(map(sum, saved["confusion_matrix"]))
    for name in ("index.html", "most_wrong.csv", "confusion_matrix.png"):
        assert (out / name).is_file()
    assert load_head(str(out)).meta["cache_key"] == saved["cache_key"]
    assert (out / "curves.png").is_file() == (head == "dense")
    if head == "dense":  # the epoch count was decided out of fold, and the page says so
        chosen = saved["selection"]
        assert chosen["rule"] == "out_of_fold" and chosen["folds"] == 5
        assert chosen["images"] == saved["train_images"]
        assert len(saved["history"]["loss"]) == chosen["epochs"] <= 30
        assert load_head(str(out)).selection == chosen
        page = (out / "index.html").read_text()
        assert "How long the head trained" in page and "never steered it" in page


def test_fractions_give_one_run_each_and_a_comparison(real_cache, tmp_path):
    reports = train_head.run(["--cache", real_cache, "--out", str(tmp_path), "--quiet",
                              "--head", "logistic", "--train-fraction", "0.1", "1.0"])
    assert [r["train_fraction"] for r in reports] == [0.1, 1.0]
    assert reports[0]["train_images"] < reports[1]["train_images"]
    assert (tmp_path / "fraction_0.1" / "report.json").is_file()
    lines = (tmp_path / "comparison.csv").read_text().strip().splitlines()
    assert len(lines) == 3
    assert json.loads((tmp_path / "report.json").read_text())["accuracy"] == reports[1]["accuracy"]


def test_incomplete_cache_is_refused(real_cache, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(real_cache, broken)
    (broken / "manifest.json").unlink()
    with pytest.raises(ValueError, match="incomplete"):
        train_head.run(["--cache", str(broken), "--out", str(tmp_path / "out"), "--quiet"])
