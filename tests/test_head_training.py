"""`train_heads_on_cache`: one head and report per training fraction, and their comparison."""
import json

import pytest

from pipeline import reports
from pipeline.training.head_training import (comparison_markdown, example_paths,
                                             train_heads_on_cache)
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
