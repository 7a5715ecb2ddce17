"""`train_heads_on_cache`: one head and report per training fraction, and their comparison."""
import json
import os

import pytest

from pipeline import reports
from pipeline.training.head_training import (comparison_markdown, data_name, example_paths,
                                             page_title, train_heads_on_cache)
from pipeline.training.heads import HeadConfig, load_head


def test_several_fractions_get_a_folder_each_and_a_comparison(tiny_cache, tmp_path):
    reports = train_heads_on_cache(tiny_cache.cache_dir, str(tmp_path),
                                   config=HeadConfig(head="logistic"), fractions=(0.5, 1.0))
    assert [r["train_fraction"] for r in reports] == [0.5, 1.0]
    assert reports[0]["train_images"] < reports[1]["train_images"]
    for fraction in ("0.5", "1"):
        head = load_head(str(tmp_path / f"fraction_{fraction}"))
        assert head.meta["cache_key"] == tiny_cache.manifest["cache_key"]
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["accuracy"] == reports[1]["accuracy"] and len(summary["fractions"]) == 2
    assert len((tmp_path / "comparison.csv").read_text().splitlines()) == 3
    assert (tmp_path / "comparison.md").read_text().strip() == comparison_markdown(reports)
    assert 'href="fraction_0.5/index.html"' in (tmp_path / "index.html").read_text()


def test_pages_name_the_model_the_data_set_and_the_share_of_it(tiny_cache, faces, tmp_path):
    found = train_heads_on_cache(tiny_cache.cache_dir, str(tmp_path),
                                 config=HeadConfig(head="logistic"), fractions=(0.5, 1.0))
    name = os.path.basename(faces)
    assert [r["title"] for r in found] == [
        f"mobilenet_v2 + logistic head on {name} ({share} % of the training images)"
        for share in ("50", "100")]
    assert found[0]["data_name"] == name
    page = (tmp_path / "fraction_0.5" / "index.html").read_text()
    assert f"<h1>mobilenet_v2 + logistic head on {name} (50 % of the training" in page
    assert (f"<h1>mobilenet_v2 + logistic head on {name} (training fractions compared)</h1>"
            in (tmp_path / "index.html").read_text())


@pytest.mark.parametrize("data, root, expected", [
    ("../shared/data/flower_photos", "/abs/shared/data/flower_photos/", "flower_photos"),
    ("tfds:beans", None, "beans")])
def test_data_name_is_the_folder_or_the_tfds_name(data, root, expected):
    manifest = {"config": {"data": data, "backbone": "mobilenet_v2"}, "source": {"root": root}}
    assert data_name(manifest) == expected
    assert page_title("dense head", manifest, 0.01) == (
        f"mobilenet_v2 + dense head on {expected} (1 % of the training images)")


def test_the_printed_table_shows_every_figure_at_4_decimals():
    row = {"train_fraction": 0.3, "train_images": 12, "accuracy": 0.72, "macro_f1": 0.7,
           "roc_auc": None, "majority_baseline": 0.5, "epochs_run": 9, "train_seconds": 1.5}
    last = comparison_markdown([row]).splitlines()[-1]
    assert last == "| 0.3000 | 12 | 0.7200 | 0.7000 | - | 0.5000 | 9 | 1.5000 |"


def test_example_paths_join_the_folder_root_or_are_none():
    assert example_paths({"source": {"root": "/data"}}, ["a/1.jpg"]) == ["/data/a/1.jpg"]
    assert example_paths({"source": {"root": None}}, ["a"]) is None


def test_a_report_failing_in_the_background_fails_the_call(tiny_cache, tmp_path, monkeypatch):
    def full_disk(out_dir, **kwargs):
        raise OSError(f"no space left writing {out_dir}")

    monkeypatch.setattr(reports, "write_report", full_disk)
    with pytest.raises(OSError, match="no space left writing .*fraction_0.5"):
        train_heads_on_cache(tiny_cache.cache_dir, str(tmp_path),
                             config=HeadConfig(head="logistic"), fractions=(0.5, 1.0))



def test_a_failed_retrain_leaves_the_previous_head_whole(tiny_cache, tmp_path, monkeypatch):
    out = tmp_path / "head"
    train_heads_on_cache(tiny_cache.cache_dir, str(out), config=HeadConfig(head="logistic"))
    before = {name: (out / name).read_bytes() for name in os.listdir(out) if (out / name).is_file()}

    def killed(out_dir, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reports, "write_report", killed)
    with pytest.raises(KeyboardInterrupt):
        train_heads_on_cache(tiny_cache.cache_dir, str(out), config=HeadConfig(head="dense"))
    after = {name: (out / name).read_bytes() for name in os.listdir(out) if (out / name).is_file()}
    assert after == before and "published.json" in after
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []
