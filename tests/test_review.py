"""A review that decides: the candidate against the baseline, thresholds, and the blessed model."""
import csv
import json
import os
import shutil

import pytest

from jobs import evaluate, export, predict, train_head
from pipeline.evaluation import gate


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
    with pytest.raises(ValueError, match="needs a baseline"):
        gate.check([change], report, class_names=["cat", "dog"])
    with pytest.raises(ValueError, match="no class 'bird'"):
        gate.check([gate.parse_requirement("recall[bird]>=0.1")], report,
                   class_names=["cat", "dog"])


def test_a_candidate_is_compared_gated_and_blessed_then_guards_export_and_predict(
        tiny_head, logistic_head, faces, tmp_path):
    reports = tmp_path / "reports"
    report, status = evaluate.run([
        "--model", tiny_head, "--data", faces, "--reports-dir", str(reports),
        "--baseline", logistic_head, "--require", "accuracy>=0.0",
        "--require", "accuracy-baseline>=-1", "--bless"])
    assert status == 0 and report["requirements_passed"]
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


def test_slices_give_figures_per_part_and_the_gate_applies_per_slice(tiny_head, faces,
                                                                     tmp_path):
    data = tmp_path / "data"
    for name in sorted(os.listdir(faces)):  # class/<camera>/file: a folder level to slice by
        for n, file in enumerate(sorted(os.listdir(os.path.join(faces, name)))):
            camera = data / name / ("phone" if n % 3 == 0 else "studio")
            camera.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.join(faces, name, file), camera / file)
    own = tmp_path / "own.csv"
    ids = sorted(f"{c}/{cam}/{f}" for c in os.listdir(data) for cam in os.listdir(data / c)
                 for f in os.listdir(data / c / cam))
    own.write_text("id,site\n" + "".join(f"{i},{'north' if n % 2 else 'south'}\n"
                                         for n, i in enumerate(ids)))
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
