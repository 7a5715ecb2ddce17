"""The reports folder under faults: a kill at any write point leaves the previous state or the new
one, whole, and the next evaluation completes it; damaged shared files are one warning each."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import warnings

import pytest

from jobs import evaluate, train_head
from pipeline.evaluation import blessing
from pipeline.publish import verify_published
from tests.conftest import REPO

#: Runs `jobs.evaluate` with `module:function` replaced by a SIGKILL of the process.
_KILLED_AT = """
import importlib, os, signal, sys
module, name = sys.argv[1].rsplit(":", 1)
setattr(importlib.import_module(module), name, lambda *a, **k: os.kill(os.getpid(), 9))
from jobs import evaluate
evaluate.run(sys.argv[2:])
"""


@pytest.fixture(scope="module")
def other_head(tiny_cache, tmp_path_factory):
    """A second model on the same classes: a logistic head on `tiny_cache`."""
    out = tmp_path_factory.mktemp("other") / "head"
    train_head.run(["--cache", tiny_cache.cache_dir, "--out", str(out), "--head", "logistic"])
    return str(out)


def _rows(reports):
    with open(reports / "runs.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _run_folders(reports):
    return sorted(p.name for p in reports.iterdir()
                  if p.is_dir() and not p.name.startswith(".")
                  and p.name not in ("predictions", blessing.COPIES))


def _assert_whole(reports):
    """Every visible run folder is published whole; every row's folder is there; the blessing
    names a published evaluation whose copy is whole."""
    for name in _run_folders(reports):
        assert verify_published(str(reports / name)) is not None, name
    assert {row["run_dir"] for row in _rows(reports)} <= set(_run_folders(reports))
    blessed = blessing.read_blessed(reports)
    assert blessed["evaluation"] in _run_folders(reports)
    copy = reports.joinpath(*blessed["copy"].split("/")[:2])  # blessed-model/<digest>
    assert verify_published(str(copy)) is not None


@pytest.mark.parametrize("kill_at, published, recorded", [
    ("pipeline.reports:write_report", False, False),  # writing the run folder
    ("pipeline.evaluation.blessing:write_blessing", True, False),  # published, nothing committed
    ("pipeline.evaluation.record:_record_run", True, False),  # blessed.json, not the row
    ("pipeline.reports.runs:_draw", True, True),  # the row, not the index
])
def test_a_kill_at_any_write_point_leaves_a_whole_folder_that_the_next_run_completes(
        kill_at, published, recorded, tiny_head, other_head, faces, tmp_path):
    reports = tmp_path / "reports"
    argv = ["--data", faces, "--reports-dir", str(reports), "--require", "accuracy>=0"]
    _, status = evaluate.run(["--model", tiny_head, *argv, "--bless"])
    assert status == 0
    killed = subprocess.run([sys.executable, "-c", _KILLED_AT, kill_at, "--model", other_head,
                             *argv, "--bless"], cwd=REPO, capture_output=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    folders = _run_folders(reports)
    assert len(folders) == (2 if published else 1)
    assert len(_rows(reports)) == (2 if recorded else 1)
    assert [p for p in os.listdir(reports) if ".staging-" in p] != [] or published
    _assert_whole(reports)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report, status = evaluate.run(["--model", tiny_head, *argv])  # the next run
    assert status == 0
    said = [str(w.message) for w in caught if "stopped before it was recorded" in str(w.message)]
    assert len(said) == (published and not recorded)
    rows = _rows(reports)
    assert [row["run_dir"] for row in rows] == _run_folders(reports)  # every run, in order
    assert not [p for p in os.listdir(reports) if ".staging-" in p]
    index = (reports / "index.html").read_text()
    assert f"{len(rows)} runs" in index and all(row["run_dir"] in index for row in rows)
    _assert_whole(reports)
    blessed = blessing.read_blessed(reports)
    if published:  # the killed run passed and was published: its blessing is completed
        assert blessed["model"] == other_head and rows[1]["blessed"] == "True"
        assert f"Blessed: <strong>{os.path.basename(other_head)}</strong>" in index
        assert report["baseline"] == other_head
    else:
        assert blessed["model"] == tiny_head and blessed["evaluation"] == rows[0]["run_dir"]


def _bless_a_copy(tiny_head, faces, tmp_path):
    model, reports = shutil.copytree(tiny_head, tmp_path / "runs" / "head"), tmp_path / "reports"
    argv = ["--model", str(model), "--data", faces, "--reports-dir", str(reports)]
    _, status = evaluate.run([*argv, "--require", "accuracy>=0", "--bless"])
    assert status == 0
    return model, reports, argv


def _damage_blessed(reports, model):
    (reports / "blessed.json").write_text("{\"model\": \n")
    return (r"blessed\.json: not a blessing record \(Expecting value: line 2 column 1 \(char "
            r"11\)\); moved to .*blessed\.json\.damaged: no model is blessed here until the "
            "next --bless")


def _damage_row(reports, model):
    text = (reports / "runs.csv").read_text().splitlines()
    header = text[0].split(",")
    row = next(csv.reader([text[1]]))
    row[header.index("accuracy")] = "notanumber"
    with open(reports / "runs.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, row])
    return r"runs\.csv: line 2 \(run .*\): accuracy 'notanumber' is not a number; read as empty"


def _move_model_of_an_old_blessing(reports, model):
    blessed = json.loads((reports / "blessed.json").read_text())
    del blessed["copy"]  # as written before copies were kept
    (reports / "blessed.json").write_text(json.dumps(blessed))
    shutil.rmtree(reports / blessing.COPIES)
    model.rename(model.parent / "moved")
    return (r"blessed\.json: the model blessed at .* is gone or has changed and the reports "
            "folder holds no copy of it; this run has no baseline")


@pytest.mark.parametrize("damage", [_damage_blessed, _damage_row, _move_model_of_an_old_blessing])
def test_a_damaged_shared_file_is_one_warning_naming_it_and_the_folder_goes_on(
        damage, tiny_head, other_head, faces, tmp_path):
    model, reports, _ = _bless_a_copy(tiny_head, faces, tmp_path)
    match = damage(reports, model)
    argv = ["--model", other_head, "--data", faces, "--reports-dir", str(reports)]
    with pytest.warns(UserWarning, match=match) as caught:
        report, status = evaluate.run(argv)
    assert status == 0 and len(_rows(reports)) == 2
    assert all("\n" not in str(w.message) for w in caught)
    assert len([w for w in caught if re.search(match, str(w.message))]) == 1  # said once
    assert str(reports) in str(caught[0].message)  # names the file
    report, status = evaluate.run([*argv, "--require", "accuracy>=0", "--bless"])
    assert status == 0 and blessing.read_blessed(reports)["model"] == other_head
    _, status = evaluate.run([*argv, "--require", "accuracy-baseline>=0"])  # a baseline again
    assert status == 0 and len(_rows(reports)) == 4


def test_a_damaged_blessing_is_refused_by_require_blessed_in_one_line(tmp_path):
    (tmp_path / "blessed.json").write_text("{")
    with pytest.raises(ValueError, match=r"^--require-blessed '.*': .*blessed\.json: not a "
                                         r"blessing record \(.*\); bless a model again"):
        blessing.require_blessed(str(tmp_path), "any")


def test_a_model_retrained_in_place_every_week_is_compared_with_its_blessed_copy(
        tiny_head, tiny_cache, faces, tmp_path, monkeypatch):
    import pipeline.evaluation.evaluate as evaluation

    model, reports, argv = _bless_a_copy(tiny_head, faces, tmp_path)
    first = blessing.read_blessed(reports)
    assert re.fullmatch(r"blessed-model/[0-9a-f]{12}", first["copy"])
    assert sorted(os.listdir(reports / first["copy"])) == ["head.json", "head.keras",
                                                           "published.json"]
    labels, score = [], evaluation._score
    monkeypatch.setattr(evaluation, "_score",
                        lambda *a, desc, **k: labels.append(desc) or score(*a, desc=desc, **k))
    train_head.run(["--cache", tiny_cache.cache_dir, "--out", str(model), "--head", "logistic"])
    weekly = [*argv, "--require", "accuracy>=0", "--require", "accuracy-baseline>=-1", "--bless"]
    report, status = evaluate.run(weekly)  # next week: the same path, another model
    assert status == 0 and report["blessed"]
    assert labels == ["evaluate candidate", "evaluate baseline head"]
    assert report["baseline"] == str(model) and report["baseline_digest"] == first["model_digest"]
    second = blessing.read_blessed(reports)
    assert second["model_digest"] == report["model_digest"] != first["model_digest"]
    assert os.listdir(reports / blessing.COPIES) == [second["copy"].split("/")[1]]  # the old copy
    assert blessing.require_blessed(str(reports), str(model)) == second  # goes; export takes it
    report, status = evaluate.run(weekly)  # the week after: unchanged, against itself
    assert status == 0 and report["baseline_comparison"]["metrics"]["accuracy"][
        "difference"] == 0.0
