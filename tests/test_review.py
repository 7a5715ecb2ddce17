"""A review that decides: the candidate against the baseline, thresholds, and the blessed model."""
import csv
import json
import os
import pathlib
import re
import shlex
import shutil

import pytest

import pipeline.evaluation.evaluate as evaluation
from jobs import evaluate, export, predict, train_head
from pipeline.evaluation import gate

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def logistic_head(tiny_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("logistic") / "head"
    train_head.run(["--cache", tiny_cache.cache_dir, "--out", str(out), "--head", "logistic"])
    return str(out)


def test_requirements_parse_and_check_per_class():
    report = {"accuracy": 0.8, "macro_f1": 0.7,
              "per_class": {"cat": {"recall": 0.9}, "dog": {"recall": 0.5}}}
    every = gate.parse_requirement("recall[*]>=0.6")
    checks = gate.check([gate.parse_requirement("accuracy >= 0.75"), every], report,
                        class_names=["cat", "dog"])
    assert [(c["what"], c["passed"]) for c in checks] == [
        ("accuracy", True), ("recall[cat]", True), ("recall[dog]", False)]
    change = gate.parse_requirement("accuracy-baseline>=-0.005")
    assert change.against_baseline and change.bound == -0.005
    comparison = {"metrics": {"accuracy": {"difference": -0.01}}}
    assert not gate.check([change], report, class_names=["cat", "dog"],
                          comparison=comparison)[0]["passed"]
    top5 = gate.check([gate.parse_requirement("top5_accuracy>0.5")], report,
                      class_names=["cat", "dog"])
    assert top5[0]["value"] is None and not top5[0]["passed"]  # not known: does not pass
    for bad in ("accuracy=0.8", "f1>=0.5", "accuracy>=high"):
        with pytest.raises(ValueError, match="expected METRIC"):
            gate.parse_requirement(bad)
    (unknown,) = gate.check([change], report, class_names=["cat", "dog"])  # no comparison
    assert unknown["what"] == "accuracy-baseline" and unknown["value"] is None
    assert not unknown["passed"]
    with pytest.raises(ValueError, match="needs a baseline"):
        gate.validate([change], class_names=["cat", "dog"], has_baseline=False)
    bird = gate.parse_requirement("recall[bird]>=0.1")
    with pytest.raises(ValueError, match="no class 'bird'"):
        gate.check([bird], report, class_names=["cat", "dog"])
    with pytest.raises(ValueError, match="no class 'bird'"):
        gate.validate([bird], class_names=["cat", "dog"], has_baseline=True)


def test_a_candidate_is_compared_gated_and_blessed_then_guards_export_and_predict(
        tiny_head, logistic_head, faces, tmp_path, capsys):
    reports = tmp_path / "reports"
    report, status = evaluate.run([
        "--model", tiny_head, "--data", faces, "--reports-dir", str(reports),
        "--baseline", logistic_head, "--require", "accuracy>=0.0",
        "--require", "accuracy-baseline>=-1", "--bless"], show_progress=True)
    assert status == 0 and report["requirements_passed"]
    progress = capsys.readouterr().err  # each pass's progress says whose it is
    assert "evaluate candidate: 24/24" in progress and "evaluate baseline head: 24/24" in progress
    against = report["baseline_comparison"]
    assert against["num_examples"] == 24 and against["verdict"] in (
        "better", "worse", "no measurable difference")
    accuracy = against["metrics"]["accuracy"]
    assert accuracy["low"] <= accuracy["difference"] <= accuracy["high"]
    blessed = json.loads((reports / "blessed.json").read_text())
    assert blessed["model"] == tiny_head and blessed["evaluation"] == report["run_dir"].split(
        "/")[-1] and len(blessed["checks"]) == 2
    page = (reports / blessed["evaluation"] / "index.html").read_text()
    assert "Against the baseline" in page and "Requirements" in page and "Verdict" in page
    assert "Blessed: <strong>head</strong>" in (reports / "index.html").read_text()
    with open(reports / "runs.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["verdict"] == against["verdict"] and row["blessed"] == "True"
    assert float(row["accuracy_low"]) <= float(row["accuracy"]) <= float(row["accuracy_high"])

    # The other model, later: compared with the blessed one by default; a failed gate keeps it.
    report, status = evaluate.run([
        "--model", logistic_head, "--data", faces, "--reports-dir", str(reports),
        "--require", "accuracy>=1.01", "--bless"])
    assert status == 1 and report["baseline"] == tiny_head and not report["blessed"]
    assert json.loads((reports / "blessed.json").read_text()) == blessed

    for job, extra in ((predict, ["--data", faces, "--out", str(tmp_path / "p")]),
                       (export, ["--out", str(tmp_path / "e")])):
        with pytest.raises(SystemExit) as refused:
            job.main(["--model", logistic_head, *extra, "--require-blessed", str(reports)])
        assert refused.value.code.startswith(f"error: model {logistic_head!r} is not the "
                                             "blessed one of")
    assert not (tmp_path / "p").exists() and not (tmp_path / "e").exists()


def _by_camera(faces, data):
    """A copy of `faces` as class/<camera>/file: a folder level to slice by."""
    for name in sorted(os.listdir(faces)):
        for n, file in enumerate(sorted(os.listdir(os.path.join(faces, name)))):
            camera = data / name / ("phone" if n % 3 == 0 else "studio")
            camera.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.join(faces, name, file), camera / file)
    return data


def test_slices_give_figures_per_part_and_the_gate_applies_per_slice(tiny_head, faces,
                                                                     tmp_path):
    data = _by_camera(faces, tmp_path / "data")
    own = tmp_path / "own.csv"
    ids = sorted(f"{c}/{cam}/{f}" for c in os.listdir(data) for cam in os.listdir(data / c)
                 for f in os.listdir(data / c / cam))
    own.write_text("id,site\n" + "".join(f"{i},{'north' if n % 2 else 'south'}\n"
                                         for n, i in enumerate(ids)),
                   encoding="utf-8-sig")  # as Excel saves "CSV UTF-8": with a byte-order mark
    report, status = evaluate.run([
        "--model", tiny_head, "--data", str(data), "--reports-dir", str(tmp_path / "reports"),
        "--slice-by", "folder", "--slice-by", "size", "--slices", str(own),
        "--require", "accuracy>=0.0"])
    assert status == 0
    slices = {(row["dimension"], row["slice"]): row for row in report["slices"]}
    assert set(slices) == {("folder", "phone"), ("folder", "studio"), ("size", "< 128 px"),
                           ("site", "north"), ("site", "south")}
    assert slices[("folder", "phone")]["count"] == 8 and slices[("size", "< 128 px")][
        "count"] == 24
    accuracies = [row["accuracy"] for row in report["slices"]]
    assert accuracies == sorted(accuracies)  # the furthest below the whole first
    for row in report["slices"]:
        low, high = row["accuracy_interval"]
        assert low <= row["accuracy"] <= high
    assert sorted(c["slice"] or "" for c in report["requirements"]) == sorted(
        ["", "folder=phone", "folder=studio", "size=< 128 px", "site=north", "site=south"])
    page = (tmp_path / "reports" / report["run_dir"].split("/")[-1] / "index.html").read_text()
    assert "<h2>Slices</h2>" in page and "studio" in page


def _evaluations(text):
    """The `jobs.evaluate` command lines of a docs text, as argument lists (continued lines
    joined)."""
    text = text.replace("\\\n", " ")
    return [shlex.split(match) for match in re.findall(r"-m jobs\.evaluate ([^&\n]+)", text)]


def _on(argv, model, data, reports):
    """A documented command line on the test's model, data and reports folder; the value
    thresholds at 0 (the tiny model is at chance), the change thresholds as written."""
    values = {"--model": model, "--data": str(data), "--reports-dir": str(reports)}
    out = []
    for flag, value in zip([None, *argv], argv):
        if flag in values:
            value = values[flag]
        elif flag == "--require" and "-baseline" not in value:
            value = re.sub(r">=\s*[\d.]+$", ">=0", value)
        out.append(value)
    return out


@pytest.fixture
def passes(monkeypatch):
    """The progress labels of the passes that ran (each pass still runs)."""
    labels, score = [], evaluation._score

    def counted(*args, desc, **kwargs):
        labels.append(desc)
        return score(*args, desc=desc, **kwargs)

    monkeypatch.setattr(evaluation, "_score", counted)
    return labels


def test_the_documented_review_passes_from_a_fresh_folder_and_on_every_rerun(
        tiny_head, faces, tmp_path, passes):
    readme = (REPO / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, re.S)
                 if "accuracy-baseline" in b)
    first, review = _evaluations(block)  # the first-run step, then the review command
    assert "--bless" in first and not any("-baseline" in arg for arg in first)
    docs = (REPO / "docs" / "jobs" / "evaluate.md").read_text()
    cron = _evaluations(next(line for line in docs.splitlines() if line.startswith("0 6 ")))
    data, reports = _by_camera(faces, tmp_path / "data"), tmp_path / "reports"
    runs = [evaluate.run(_on(argv, tiny_head, data, reports)) for argv in (first, review,
                                                                            review, *cron)]
    for report, status in runs:
        assert status == 0 and report["requirements_passed"] and report["blessed"]
    for report, _ in runs[1:]:  # the blessed model, compared with itself ...
        assert report["baseline"] == tiny_head
        assert report["baseline_comparison"]["metrics"]["accuracy"]["difference"] == 0.0
    assert {c["slice"] for c in runs[2][0]["requirements"] if c["what"] == "accuracy-baseline"
            } == {None, "folder=phone", "folder=studio"}
    assert passes == ["evaluate"] * 4  # ... on its own rows: no second pass


def _head_with_classes(tiny_head, cache_dir, root, class_names):
    """A copy of `tiny_head` whose cache (a copy too) names other classes."""
    cache_copy, head = shutil.copytree(cache_dir, root / "cache"), root / "head"
    manifest = json.loads((cache_copy / "manifest.json").read_text())
    (cache_copy / "manifest.json").write_text(json.dumps({**manifest,
                                                          "class_names": class_names}))
    shutil.copytree(tiny_head, head)
    meta = json.loads((head / "head.json").read_text())
    (head / "head.json").write_text(json.dumps({**meta, "cache_dir": str(cache_copy)}))
    (head / "published.json").unlink()  # hand-made: not the folder jobs.train_head published
    return str(head)


@pytest.mark.parametrize("case, match", [
    ("unknown class", "--require 'recall\\[bird\\]>=0.5': no class 'bird'"),
    ("no baseline", "--require 'accuracy-baseline>=-0.005': a change threshold needs a baseline "
                    "and there is none: pass --baseline MODEL, or first bless a model with "
                    "value thresholds only"),
    ("other classes", "baseline '.*': its classes \\(frowning, smiling\\) are not the "
                      "candidate's \\(neutral, smiling\\)"),
    ("no id column", "--slices '.*own.csv': expected a CSV file with an id column"),
])
def test_a_refusal_that_needs_no_image_comes_before_the_pass_and_writes_nothing(
        case, match, tiny_head, tiny_cache, faces, tmp_path, monkeypatch):
    def no_pass(*args, **kwargs):
        raise AssertionError("an image was scored before the refusal")

    monkeypatch.setattr(evaluation, "_score", no_pass)
    (tmp_path / "own.csv").write_text("path,site\nsmiling/0.jpg,north\n")
    extra = {"unknown class": ["--require", "recall[bird]>=0.5"],
             "no baseline": ["--require", "accuracy-baseline>=-0.005"],
             "other classes": ["--baseline", _head_with_classes(
                 tiny_head, tiny_cache.cache_dir, tmp_path, ["frowning", "smiling"])],
             "no id column": ["--slices", str(tmp_path / "own.csv")]}[case]
    reports = tmp_path / "reports"
    with pytest.raises(ValueError, match=match):
        evaluate.run(["--model", tiny_head, "--data", faces, "--reports-dir", str(reports),
                      *extra])
    assert not reports.exists()


def test_reports_inside_the_data_are_refused_before_the_pass(tiny_head, faces_copy,
                                                             monkeypatch):
    monkeypatch.setattr(evaluation, "_score", lambda *a, **k: pytest.fail("scored"))
    with pytest.raises(ValueError, match="--reports-dir .*: inside --data"):
        evaluate.run(["--model", tiny_head, "--data", str(faces_copy), "--reports-dir",
                      str(faces_copy / "reports")])
    assert not (faces_copy / "reports").exists()


def test_failure_lines_name_the_slice_and_the_change_and_an_empty_dimension_is_said(
        tiny_head, faces, tmp_path, passes, capsys):
    reports = tmp_path / "reports"
    with pytest.raises(SystemExit) as failed:
        evaluate.main(["--model", tiny_head, "--data", faces, "--reports-dir", str(reports),
                       "--baseline", tiny_head, "--slice-by", "folder", "--slice-by", "size",
                       "--require", "accuracy>=1.01", "--require", "accuracy-baseline>=0.5"])
    assert failed.value.code == 1
    lines = capsys.readouterr().out.splitlines()
    assert ("note: no slice by folder: every image lies directly in its class folder (no "
            "sub-folder to slice by)") in lines
    assert any(re.fullmatch(r"FAILED: accuracy>=1\.01 \(accuracy is [\d.]+\)", x) for x in lines)
    assert any(re.fullmatch(r"FAILED: accuracy>=1\.01 on the slice size=< 128 px \(accuracy is "
                            r"[\d.]+\)", x) for x in lines)
    assert "FAILED: accuracy-baseline>=0.5 (accuracy-baseline is 0.0000)" in lines
    assert passes == ["evaluate"]  # the baseline is the candidate: one pass
    (run,) = [p for p in reports.iterdir() if (p / "report.json").is_file()]
    assert json.loads((run / "report.json").read_text())["empty_slices"] == [
        {"dimension": "folder", "reason": "every image lies directly in its class folder (no "
                                          "sub-folder to slice by)"}]
    assert "No slice by folder" in (run / "index.html").read_text()
