import csv
import json
import multiprocessing
import os
import shutil

import pytest

from jobs import evaluate


@pytest.fixture
def head_and_data(tiny_head, faces, tiny_cache):
    return tiny_head, faces, tiny_cache.cache_dir


def _rows(reports):
    with open(reports / "runs.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_two_runs_give_two_rows_and_a_trend_plot(head_and_data, tmp_path):
    head, faces, _ = head_and_data
    for _ in range(2):
        report, status = evaluate.run(["--model", head, "--data", faces, "--reports-dir",
                                       str(tmp_path)])
        assert status == 0
    rows = _rows(tmp_path)
    assert len(rows) == 2 and {"time", "model", "data", "accuracy", "macro_f1"} <= set(rows[0])
    assert float(rows[1]["accuracy"]) == pytest.approx(report["accuracy"])
    assert (tmp_path / "trend.png").is_file() and (tmp_path / "index.html").is_file()
    assert (tmp_path / rows[0]["run_dir"] / "report.json").is_file()
    assert report["num_examples"] == 24
    run = tmp_path / rows[1]["run_dir"]
    assert report["changes"] == {"previous_run": rows[0]["run_dir"], "fixed": 0, "broken": 0,
                                 "changed": 0}
    assert (run / "changes.csv").is_file() and (run / "changes.html").is_file()
    assert report["comparison"]["vs_previous"]["accuracy"] == 0.0
    assert report["title"] == f"head on {os.path.basename(faces)}" and "/" not in report["title"]
    saved = json.loads((run / "report.json").read_text())
    assert saved["comparison"]["previous_run"] == rows[0]["run_dir"]
    assert "None" not in (tmp_path / "index.html").read_text()


def test_fail_under_sets_the_exit_status(head_and_data, tmp_path):
    head, faces, _ = head_and_data
    _, status = evaluate.run(["--model", head, "--data", faces, "--reports-dir", str(tmp_path),
                              "--fail-under", "1.01"])
    assert status == 1
    _, status = evaluate.run(["--model", head, "--data", faces, "--reports-dir", str(tmp_path),
                              "--fail-under", "0.0"])
    assert status == 0
    with pytest.raises(SystemExit) as info:
        evaluate.main(["--model", head, "--data", faces, "--reports-dir", str(tmp_path),
                       "--fail-under", "1.01"])
    assert info.value.code == 1
    assert len(_rows(tmp_path)) == 3


def test_only_new_images_go_through_the_backbone(head_and_data, tmp_path):
    head, faces, _ = head_and_data
    data = shutil.copytree(faces, tmp_path / "data")
    report, _ = evaluate.run(["--model", head, "--data", str(data), "--reports-dir",
                              str(tmp_path / "reports")])
    assert (report["embedded"], report["reused"]) == (0, 24)
    import numpy as np

    from pipeline.data.sample import make_face

    rng = np.random.default_rng(99)
    for index in range(3):
        make_face(True, rng, 48).save(data / "smiling" / f"new_{index}.jpg")
    report, _ = evaluate.run(["--model", head, "--data", str(data), "--reports-dir",
                              str(tmp_path / "reports")])
    assert (report["embedded"], report["reused"]) == (3, 24)
    report, _ = evaluate.run(["--model", head, "--data", str(data), "--reports-dir",
                              str(tmp_path / "reports")])
    assert (report["embedded"], report["reused"]) == (0, 27)


def test_a_cache_split_can_be_evaluated(head_and_data, tmp_path):
    head, _, cache_dir = head_and_data
    report, _ = evaluate.run(["--model", head, "--data", f"{cache_dir}:val", "--reports-dir",
                              str(tmp_path / "reports"), "--predictions-dir",
                              str(tmp_path / "rows")])
    assert report["embedded"] == 0 and report["num_examples"] > 0
    assert report["predictions_dir"].startswith(str(tmp_path / "rows"))
    assert not os.path.exists(tmp_path / "reports" / "predictions")


def _evaluate_in_process(args):
    evaluate.run(args)


def test_concurrent_runs_do_not_corrupt_the_index(head_and_data, tmp_path):
    head, faces, _ = head_and_data
    args = ["--model", head, "--data", faces, "--reports-dir", str(tmp_path)]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_evaluate_in_process, args=(args,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    rows = _rows(tmp_path)
    assert len(rows) == 2 and rows[0]["run_dir"] != rows[1]["run_dir"]


def test_unknown_model_and_unknown_classes_are_refused(head_and_data, tmp_path):
    head, faces, _ = head_and_data
    with pytest.raises(ValueError, match="expected a model.keras"):
        evaluate.run(["--model", str(tmp_path), "--data", faces, "--reports-dir",
                      str(tmp_path)])
    other = shutil.copytree(faces, tmp_path / "other")
    (other / "neutral").rename(other / "frowning")
    with pytest.raises(ValueError, match="classes \\['frowning'\\] are not among"):
        evaluate.run(["--model", head, "--data", str(other), "--reports-dir",
                      str(tmp_path / "reports")])
    assert not (tmp_path / "reports").exists()  # a refused run writes nothing


def test_figures_from_the_shards_summaries_equal_the_figures_of_every_row(head_and_data,
                                                                          tmp_path):
    import numpy as np
    import pyarrow.parquet as pq

    from pipeline.reports import compute_metrics

    head, faces, _ = head_and_data
    report, _ = evaluate.run(["--model", head, "--data", faces, "--reports-dir", str(tmp_path)])
    rows = [row for name in sorted(os.listdir(report["predictions_dir"]))
            if name.endswith(".parquet")
            for row in pq.read_table(os.path.join(report["predictions_dir"], name)).to_pylist()]
    names = report["class_names"]
    y = np.array([names.index(row["true_label"]) for row in rows])
    exact = compute_metrics(y, np.array([row["probabilities"] for row in rows]), names)
    assert report["confusion_matrix"] == exact["confusion_matrix"]
    for key in ("num_examples", "accuracy", "macro_f1", "weighted_f1", "majority_baseline"):
        assert report[key] == pytest.approx(exact[key], abs=1e-12), key
    for name, figures in exact["per_class"].items():
        assert report["per_class"][name] == pytest.approx(figures, abs=1e-12), name
    for ours, theirs in zip(report["thresholds"], exact["thresholds"]):
        assert ours == pytest.approx(theirs, abs=1e-12)
    assert report["ece"] == pytest.approx(exact["ece"], abs=1e-9)
    assert abs(report["roc_auc"] - exact["roc_auc"]) < 0.002


def test_the_evaluation_graph_does_not_grow_with_the_number_of_images(head_and_data, tmp_path):
    import apache_beam as beam

    from pipeline.evaluation.evaluate import eval_inputs
    from pipeline.prediction.job import PredictConfig, build_predict_pipeline
    from pipeline.prediction.models import open_model

    head, _, _ = head_and_data
    spec, sizes = open_model(head), []
    for count in (1_000, 100_000):
        for label in ("neutral", "smiling"):
            folder = tmp_path / f"n{count}" / label
            folder.mkdir(parents=True)
            for index in range(count // 2):
                (folder / f"{index:06d}.jpg").touch()
        inputs, _ = eval_inputs(str(tmp_path / f"n{count}"), list(spec.class_names), tmp_path)
        pipeline = beam.Pipeline()
        build_predict_pipeline(pipeline, inputs, spec, PredictConfig(model=head, data=""),
                               run_dir=str(tmp_path / f"r{count}"))
        sizes.append(len(pipeline.to_runner_api().SerializeToString()))
    assert abs(sizes[1] - sizes[0]) <= 0.1 * sizes[0]
