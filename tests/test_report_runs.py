import csv
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from pipeline.reports import changes
from pipeline.reports import runs as report_runs
from pipeline.reports import write_report

NAMES = ["cat", "dog"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_MARKER = ("<script>document.body.setAttribute('data-overflow', String("
           "document.documentElement.scrollWidth - document.documentElement.clientWidth));"
           # Every one-word text of a table cell that the browser broke across lines.
           "var broken = [], walk = document.createTreeWalker(document.body, "
           "NodeFilter.SHOW_TEXT);"
           "while (walk.nextNode()) { var node = walk.currentNode, "
           "text = node.textContent.trim(), range = document.createRange();"
           "  range.selectNodeContents(node);"
           "  if (text && !/\\s/.test(text) && node.parentElement.closest('td,th')"
           "      && range.getClientRects().length > 1) broken.push(text); }"
           "document.body.setAttribute('data-broken', broken.join('|'));</script>")


def _run(reports, stamp, accuracy, *, threshold=0.01, fail_under=None, fingerprint="fp",
         model="/srv/runs/head", data="/data/smiles"):
    """A stamped run whose accuracy is `accuracy` on 20 examples, recorded in `reports`."""
    y = np.array([0, 1] * 10)
    right = np.arange(20) < round(accuracy * 20)
    proba = np.where((y == 1) == right, 0.8, 0.2)
    proba = np.stack([1 - proba, proba], axis=1)
    run_dir = f"2026010{stamp}T060000-head-abc{stamp}"
    report = write_report(reports / run_dir, ids=np.array([f"{i}.jpg" for i in range(20)]),
                          y_true=y, proba=proba, class_names=NAMES, title="head on smiles")
    row = {**report, "time": f"2026-01-0{stamp}T06:00:00+0000", "model": model, "data": data,
           "data_fingerprint": fingerprint, "run_dir": run_dir}
    return report_runs.update_runs_index(reports, row, threshold=threshold,
                                         fail_under=fail_under)


@pytest.fixture
def three_runs(tmp_path):
    return [_run(tmp_path, stamp, accuracy) for stamp, accuracy in ((1, 0.9), (2, 0.8),
                                                                     (3, 0.85))]


def test_latest_run_is_compared_with_previous_and_best(three_runs, tmp_path):
    first, second, third = three_runs
    assert first["previous_run"] is None and not first["regression"]
    assert third["vs_previous"]["accuracy"] == pytest.approx(0.05)
    assert third["vs_best"]["accuracy"] == pytest.approx(-0.05)
    assert third["best_run"].startswith("20260101")
    page = (tmp_path / "index.html").read_text()
    assert "+0.0500" in page and "-0.0500" in page and "0.8500" in page
    assert "0.85000" not in page and "None" not in page


def test_a_drop_beyond_the_threshold_is_flagged(three_runs, tmp_path):
    _, second, third = three_runs
    assert second["regression"] and "accuracy fell by 0.1000" in second["reasons"][0]
    assert not third["regression"]
    rows = report_runs.read_runs(tmp_path)
    assert [bool(r["regression"]) for r in rows] == [False, True, False]
    assert not _run(tmp_path, 4, 0.7, threshold=0.2)["regression"]  # 0.15 drop < 0.2


def test_fail_under_flags_and_other_data_is_not_compared(three_runs, tmp_path):
    flagged = _run(tmp_path, 4, 0.85, fail_under=0.9)
    assert flagged["regression"] and "fail-under" in flagged["reasons"][0]
    other = _run(tmp_path, 5, 0.5, fingerprint="other", data="/data/flowers")
    assert other["previous_run"] is None and not other["regression"]
    assert (tmp_path / "trend.png").is_file() and (tmp_path / "recall_trend.png").is_file()


def _row(run_dir, accuracy, *, model="runs/finetune/model.keras", data="/data/faces",
         fingerprint="fp"):
    return {"run_dir": run_dir, "model": model, "data": data, "data_name": "",
            "data_fingerprint": fingerprint, "accuracy": str(accuracy)}


def test_regression_flags_compare_only_runs_of_one_model_on_one_data():
    faces = _row("faces", 0.9)
    flowers = _row("flowers", 0.3, data="/data/flowers", fingerprint="other")
    head = _row("head", 0.2, model="runs/head")
    assert report_runs.compare_runs([faces, flowers])["previous_run"] is None
    assert report_runs.compare_runs([faces, head])["previous_run"] is None
    judged = report_runs.compare_runs([faces, flowers, head, _row("again", 0.5)])
    assert judged["previous_run"] == "faces" and judged["regression"]
    # The same model on a hold-out folder that grew (another fingerprint) is the same series;
    # a diff of predictions also needs the same images.
    grown = _row("grown", 0.9, fingerprint="fp2")
    assert report_runs.compare_runs([faces, flowers, grown])["previous_run"] == "faces"
    assert report_runs.previous_run([faces, flowers], grown, same_images=True) is None
    assert report_runs.previous_run([faces, flowers], _row("x", 0.9),
                                    same_images=True)["run_dir"] == "faces"


@pytest.mark.parametrize("after, flagged", [(0.85, False), (0.8499, True)])
def test_a_drop_equal_to_the_threshold_is_not_a_regression(after, flagged):
    judged = report_runs.compare_runs([_row("a", 0.86), _row("b", after)], threshold=0.01)
    assert judged["regression"] is flagged
    assert report_runs.compare_runs([_row("a", after)], fail_under=after)["regression"] is False


def test_the_trend_draws_one_line_per_model_and_data(tmp_path):
    for stamp, (model, data) in enumerate([("/q/finetune/model.keras", "/samples/faces"),
                                           ("/u/finetune/model.keras", "/data/flowers"),
                                           ("/u/head", "/data/flowers")] * 2):
        _run(tmp_path, stamp + 1, 0.8, model=model, data=data)
    from pipeline.reports import figures as report_figures

    rows = report_runs.read_runs(tmp_path)
    fig = report_figures.trend_figure(rows, series=report_runs.series_key)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["finetune on faces", "finetune on flowers", "head on flowers",
                      "majority baseline, faces", "majority baseline, flowers"]
    assert [len(line.get_xdata()) for line in fig.axes[0].get_lines()] == [2, 2, 2, 2, 4]
    page = (tmp_path / "index.html").read_text()
    assert "Per-class recall: head on flowers" in page


@pytest.mark.parametrize("path, name", [
    ("/srv/runs/finetune/model.keras", "finetune"), ("/data/smiles/", "smiles"),
    ("tfds:beans:test", "beans (test)"), ("/srv/cache/abc:val", "abc (val)")])
def test_titles_use_names_not_paths(path, name):
    assert report_runs.display_name(path) == name


def _predictions(predicted, digests="abc"):
    return [{"id": f"{i}.jpg", "path": "", "digest": digests[i], "true": "cat",
             "predicted": p, "confidence": 0.9} for i, p in enumerate(predicted)]


def test_diff_lists_fixed_and_broken_images(tmp_path):
    before = {r["id"]: r for r in _predictions(["dog", "cat", "dog"])}
    after = {r["id"]: r for r in _predictions(["cat", "dog", "dog"])}
    changes = report_runs.diff_runs(before, after)
    assert [(c["id"], c["change"]) for c in changes] == [("0.jpg", "fixed"), ("1.jpg", "broken")]
    summary = report_runs.write_changes(tmp_path, changes, previous_run="run1", title="t")
    assert summary == {"previous_run": "run1", "fixed": 1, "broken": 1, "changed": 0}
    with open(tmp_path / "changes.csv", newline="") as handle:
        assert [r["change"] for r in csv.DictReader(handle)] == ["fixed", "broken"]
    assert "Newly broken (right before, wrong now): 1" in (tmp_path / "changes.html").read_text()


def test_diff_refuses_runs_over_other_images():
    before = {r["id"]: r for r in _predictions(["dog", "cat", "dog"])}
    after = {r["id"]: r for r in _predictions(["dog", "cat", "dog"], digests="abX")}
    assert report_runs.diff_runs(before, after) is None
    assert report_runs.diff_runs(None, after) is None


def test_the_diff_of_two_run_folders_by_buckets_equals_the_whole_diff(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    names = ["cat", "dog", "owl"]
    digests = [f"d{i}" for i in range(40)]
    runs = []
    for name in ("before", "after"):
        rows = [{"id": f"{i:02d}.jpg", "path": "", "digest": digests[i], "true": "cat",
                 "predicted": names[rng.integers(3)], "confidence": 0.5} for i in range(40)]
        (tmp_path / name).mkdir()
        report_runs.write_predictions(tmp_path / name, rows)
        runs.append({row["id"]: {k: str(v) for k, v in row.items()} for row in rows})
    whole = report_runs.diff_runs(*runs)
    monkeypatch.setattr(changes, "DIFF_BUCKET_ROWS", 7)  # 6 buckets
    assert report_runs.diff_run_folders(tmp_path / "before", tmp_path / "after",
                                        rows=40) == whole
    assert len(whole) > 5
    assert report_runs.diff_run_folders(tmp_path / "missing", tmp_path / "after",
                                        rows=40) is None


def test_trend_reads_with_one_and_with_many_runs(tmp_path):
    from pipeline.reports import figures as report_figures

    for count in (1, 500):
        rows = [{"time": f"2026-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}T06:00:00+0000",
                 "model": "m", "accuracy": 0.8, "macro_f1": 0.7, "majority_baseline": 0.5}
                for i in range(count)]
        fig = report_figures.trend_figure(rows, fail_under=0.75)
        fig.canvas.draw()
        labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
        assert 2 <= len(labels) <= 12, labels
        assert any(line.get_label().startswith("fail under") for line in fig.axes[0].lines)


def chromium_overflow(page, screenshot):
    """Renders `page` at 1280 px: writes a PNG and returns the horizontal overflow in px."""
    return chromium_layout(page, screenshot)[0]


def chromium_layout(page, screenshot):
    """Renders `page` at 1280 px: writes a PNG and returns the horizontal overflow in px and
    the one-word texts of table cells broken across lines."""
    checked = page.with_name(f"_check_{page.name}")
    checked.write_text(page.read_text().replace("</body>", _MARKER + "</body>"))
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--window-size=1280,1400"]
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([*common, f"--user-data-dir={profile}", f"--screenshot={screenshot}",
                        page.as_uri()], check=True, capture_output=True, timeout=120)
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([*common, f"--user-data-dir={profile}", "--dump-dom",
                              checked.as_uri()], check=True, capture_output=True, text=True,
                             timeout=120).stdout
    checked.unlink()
    broken = re.search(r'data-broken="([^"]*)"', dom).group(1)
    return (int(re.search(r'data-overflow="(-?\d+)"', dom).group(1)),
            broken.split("|") if broken else [])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_index_pages_fit_1280_pixels_in_chromium(three_runs, tmp_path):
    run_dir = report_runs.read_runs(tmp_path)[-1]["run_dir"]
    for page in (tmp_path / "index.html", tmp_path / run_dir / "index.html"):
        shot = page.with_suffix(".png")
        assert chromium_overflow(page, shot) <= 0, page
        assert shot.stat().st_size > 10_000
    wide = tmp_path / "wide.html"
    wide.write_text("<html><body><div style='width:2000px'>x</div></body></html>")
    assert chromium_overflow(wide, tmp_path / "wide.png") > 0  # the check can fail


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_runs_table_breaks_no_word_at_1280_pixels(tmp_path):
    for stamp, (model, data) in enumerate([("/q/finetune/model.keras", "/samples/faces"),
                                           ("/u/finetune/model.keras", "/data/flower_photos"),
                                           ("/u/head", "/data/flower_photos")] * 2):
        _run(tmp_path, stamp + 1, 0.8, model=model, data=data)
    overflow, broken = chromium_layout(tmp_path / "index.html", tmp_path / "index.png")
    assert overflow <= 0 and broken == []
    narrow = tmp_path / "narrow.html"
    narrow.write_text("<html><body><table style='width:60px;overflow-wrap:anywhere'><tr>"
                      "<td>accuracy_and_more</td></tr></table></body></html>")
    assert chromium_layout(narrow, tmp_path / "narrow.png")[1] == ["accuracy_and_more"]
