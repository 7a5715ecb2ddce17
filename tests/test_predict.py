"""The predict job: parity with evaluation and export, every kind of input, accounting, reuse."""
import os
import shutil

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs import embed, evaluate, export, finetune, predict, train_head
from pipeline.batch import accounting
from pipeline.data.images import load_image
from pipeline.data.links import NAME_REASON
from pipeline.features import cache
from pipeline.features.backbones import Embedder, manifest_weights
from pipeline.prediction import shard as predict_shard
from pipeline.prediction.inputs import open_inputs
from pipeline.prediction.job import PredictConfig, build_predict_pipeline
from pipeline.prediction.models import open_model
from pipeline.training import ensemble
from pipeline.training.end_to_end import build_model, load_finetuned
from pipeline.training.heads import load_head, logits_to_proba
from pipeline.training.tta import with_flip_tta
from tests.conftest import IN_MEMORY, TINY


@pytest.fixture(scope="module")
def crop_data(faces, request):
    """Real faces for face crop (40 GENKI-4K images) where ../shared has them, else the drawn
    ones (whose face fills the image: the crop keeps it whole)."""
    try:
        return request.getfixturevalue("genki_subset")
    except pytest.skip.Exception:
        return faces


@pytest.fixture(scope="module")
def models(faces, crop_data, tiny_head, tmp_path_factory):
    """`{kind: (model, data)}`: a head, a fine-tuned face-crop model (the job's ensemble of the
    fine-tuned model and its head), the same with mirror averaging, and its export, each with
    the images it is tested on."""
    root = tmp_path_factory.mktemp("predict")
    cropped = embed.run(["--data", crop_data, "--cache-dir", str(root / "cache"), *TINY,
                         "--augment-copies", "0", "--face-crop", *IN_MEMORY])
    train_head.run(["--cache", cropped.cache_dir, "--out", str(root / "head_crop"), "--quiet",
                    "--epochs", "3", "--epoch-folds", "0"])
    finetune.run(["--cache", cropped.cache_dir, "--head", str(root / "head_crop"), "--out",
                  str(root / "tuned"), "--epochs", "1", "--batch-size", "8", "--tta", "none"])
    os.makedirs(root / "mirror")
    model, _ = load_finetuned(str(root / "tuned" / "model.keras"))
    with_flip_tta(model).save(root / "mirror" / "model.keras")
    shutil.copy(root / "tuned" / "model.json", root / "mirror" / "model.json")
    export.run(["--model", str(root / "mirror" / "model.keras"), "--out",
                str(root / "exported")])
    return {"head": (tiny_head, faces),
            "face_crop": (str(root / "tuned" / "model.keras"), crop_data),
            "mirror": (str(root / "mirror" / "model.keras"), crop_data),
            "exported": (str(root / "exported"), crop_data)}


def _predict(model, data, out, *extra):
    return predict.run(["--model", model, "--data", str(data), "--out", str(out), *extra,
                        *IN_MEMORY])


def _rows(result):
    rows = {}
    for shard in result.manifest["shards"]:
        table = pq.read_table(os.path.join(result.out_dir, shard["file"]))
        rows.update((row["id"], row) for row in table.to_pylist())
    return rows


def _in_process(model_path, faces, ids):
    """The model applied directly in this process (no Beam) to the same images, prepared as the
    model was validated: the reference the job must match."""
    spec = open_model(model_path)
    images = np.stack([load_image(open(os.path.join(faces, i), "rb").read(), spec.image_size,
                                  face_crop=spec.face_crop) for i in ids])
    if spec.kind == "head":
        manifest = cache.read_manifest(spec.cache_dir)
        config = manifest["config"]
        embedder = Embedder(config["backbone"], image_size=config["image_size"],
                            weights=manifest_weights(manifest), alpha=config["alpha"])
        return load_head(model_path).predict_proba(embedder(images))
    model, _ = load_finetuned(model_path)
    return logits_to_proba(model.predict(images, verbose=0), len(spec.class_names))


@pytest.mark.parametrize("kind", ["head", "face_crop", "mirror"])
def test_probabilities_equal_the_model_applied_in_process(models, tmp_path, kind):
    model, data = models[kind]
    result = _predict(model, data, tmp_path / "out", "--num-shards", "2")
    rows = _rows(result)
    ids = sorted(rows)
    assert len(ids) in (24, 40) and result.manifest["counts"]["predicted"] == len(ids)
    ours = np.array([rows[i]["probabilities"] for i in ids])
    np.testing.assert_allclose(ours, _in_process(model, data, ids), atol=1e-5)
    if kind != "head" and "genki" in str(data):  # real faces: most are found and cropped
        assert sum(row["face_found"] for row in rows.values()) > len(ids) // 2
    assert result.manifest["model"]["preparation"]["face_crop"] == (kind != "head")
    assert result.manifest["model"]["preparation"]["mirror"] == (kind == "mirror")


def test_the_exported_saved_model_predicts_the_same(models, tmp_path):
    (mirror, data), (exported, _) = models["mirror"], models["exported"]
    keras_rows = _rows(_predict(mirror, data, tmp_path / "a"))
    saved = _predict(exported, data, tmp_path / "b")
    assert saved.manifest["model"]["kind"] == "saved_model"
    assert saved.manifest["model"]["preparation"]["face_crop"]
    assert saved.manifest["model"]["preparation"]["mirror"]  # export.json says so
    saved_rows = _rows(saved)
    assert sorted(saved_rows) == sorted(keras_rows)
    for example_id, row in saved_rows.items():
        np.testing.assert_allclose(row["probabilities"], keras_rows[example_id]["probabilities"],
                                   atol=1e-5)


@pytest.fixture(scope="module")
def real_ensemble(real_cache, genki_subset, tmp_path_factory):
    """An ensemble of a fine-tuned model and its head on real MobileNet weights (members that
    differ per image), weight 0.3, as the fine-tune job saves one, and the faces it is tested
    on."""
    root = tmp_path_factory.mktemp("ensemble")
    train_head.run(["--cache", real_cache, "--out", str(root / "head"), "--quiet", "--epochs",
                    "5", "--epoch-folds", "0"])
    finetune.run(["--cache", real_cache, "--head", str(root / "head"), "--out",
                  str(root / "tuned"), "--epochs", "2", "--batch-size", "16",
                  "--learning-rate", "1e-3", "--keep", "best", "--tta", "flip"])
    tuned, info = load_finetuned(str(root / "tuned" / "model.keras"))
    head = with_flip_tta(build_model(cache.read_manifest(real_cache),
                                     load_head(str(root / "head"))))
    os.makedirs(root / "ensemble")
    ensemble.ensemble_model(tuned, head, 0.3, 2).save(root / "ensemble" / "model.keras")
    shutil.copy(root / "tuned" / "model.json", root / "ensemble" / "model.json")
    return str(root / "ensemble" / "model.keras"), genki_subset


def test_an_ensemble_gives_the_average_it_claims_through_predict_evaluate_and_export(
        real_ensemble, tmp_path):
    model_path, data = real_ensemble
    weight = 0.3
    predicted = _rows(_predict(model_path, data, tmp_path / "predicted"))
    ids = sorted(predicted)
    spec = open_model(model_path)
    images = np.stack([load_image(open(os.path.join(data, i), "rb").read(), spec.image_size,
                                  face_crop=spec.face_crop) for i in ids])
    tuned, head = ensemble.members(load_finetuned(model_path)[0])
    members = [logits_to_proba(m.predict(images, verbose=0), 2) for m in (tuned, head)]
    claimed = weight * members[0] + (1 - weight) * members[1]
    assert np.abs(members[0] - members[1]).max() > 1e-3  # two models, not one twice
    assert np.ptp(claimed[:, 1]) > 1e-2  # that tell the images apart
    np.testing.assert_allclose([predicted[i]["probabilities"] for i in ids], claimed, atol=1e-5)
    evaluated, _ = evaluate.run(["--model", model_path, "--data", data, "--reports-dir",
                                 str(tmp_path / "reports"), *IN_MEMORY])
    rows = {row["id"]: row for name in sorted(os.listdir(evaluated["predictions_dir"]))
            if name.endswith(".parquet") for row in pq.read_table(
                os.path.join(evaluated["predictions_dir"], name)).to_pylist()}
    np.testing.assert_allclose([rows[i]["probabilities"] for i in ids], claimed, atol=1e-5)
    export.run(["--model", model_path, "--out", str(tmp_path / "exported")])
    served = _rows(_predict(str(tmp_path / "exported"), data, tmp_path / "served"))
    np.testing.assert_allclose([served[i]["probabilities"] for i in ids], claimed, atol=1e-5)


def test_rows_hold_the_contract_columns_and_the_csv_and_page(models, faces, tmp_path):
    result = _predict(models["head"][0], faces, tmp_path, "--top-k", "1", "--with-embeddings")
    row = next(iter(_rows(result).values()))
    assert {"id", "path", "digest", "label", "probability", "top_k_labels",
            "top_k_probabilities", "probabilities", "true_label", "embedding"} <= set(row)
    assert len(row["top_k_labels"]) == 1 and row["label"] == row["top_k_labels"][0]
    assert row["true_label"] == row["id"].split("/")[0]  # class folders are the model's
    assert len(row["embedding"]) > 0 and abs(sum(row["probabilities"]) - 1) < 1e-5
    import pandas

    table = pandas.read_csv(os.path.join(result.out_dir, "predictions.csv"))
    assert len(table) == 24 and set(table["label"]) <= {"neutral", "smiling"}
    page = open(os.path.join(result.out_dir, "index.html")).read()
    assert "Lowest confidence" in page and str(tmp_path) not in page
    manifest = result.manifest
    assert manifest["model"]["digest"] and manifest["source"]["fingerprint"]
    assert manifest["labelled"] == 24 and sum(manifest["per_class"].values()) == 24
    assert not os.listdir(tmp_path / ".runs")


def test_unlabeled_flat_and_nested_folders_and_a_file_list(models, faces, tmp_path):
    flat, nested = tmp_path / "flat", tmp_path / "nested" / "2026-12-01" / "cam"
    flat.mkdir()
    nested.mkdir(parents=True)
    for name in sorted(os.listdir(os.path.join(faces, "smiling")))[:5]:
        shutil.copy(os.path.join(faces, "smiling", name), flat / name)
        shutil.copy(os.path.join(faces, "smiling", name), nested / name)
    (flat / "notes.png").write_bytes(b"not an image")
    (flat / "readme.txt").write_text("not listed: not an image extension")
    result = _predict(models["head"][0], flat, tmp_path / "o1")
    assert result.manifest["counts"] == {"listed": 6, "predicted": 5, "reused": 0,
                                         "skipped": 1, "rows": 5}
    assert result.manifest["skipped"][0]["reason"] == "not an image file (unrecognised format)"
    assert {row["true_label"] for row in _rows(result).values()} == {None}
    deep = _rows(_predict(models["head"][0], tmp_path / "nested", tmp_path / "o2"))
    assert all(i.startswith("2026-12-01/cam/") for i in deep)
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\n" + "".join(f"flat/{name},smiling\n" for name in
                                                 sorted(os.listdir(flat))
                                                 if name.endswith(".jpg")))
    listed = _rows(_predict(models["head"][0], listing, tmp_path / "o3"))
    assert len(listed) == 5 and {row["true_label"] for row in listed.values()} == {"smiling"}
    twice = tmp_path / "twice.csv"
    first = sorted(name for name in os.listdir(flat) if name.endswith(".jpg"))[0]
    twice.write_text(f"path,label\nflat/{first},smiling\nflat/{first},smiling\n")
    once = _predict(models["head"][0], twice, tmp_path / "o5")
    assert len(_rows(once)) == 1 and once.manifest["counts"]["skipped"] == 1
    assert once.manifest["skipped"][0]["reason"].startswith(f"listed twice: the id 'flat/{first}'")
    glob = _rows(_predict(models["head"][0], f"{tmp_path}/nested/*/cam/*.jpg",
                          tmp_path / "o4"))
    assert sorted(glob) == sorted(deep)


def test_a_file_name_that_is_not_utf8_is_skipped_with_its_reason(models, faces, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    first = sorted(os.listdir(os.path.join(faces, "smiling")))[0]
    shutil.copy(os.path.join(faces, "smiling", first), flat / first)
    shutil.copy(os.path.join(faces, "smiling", first), os.path.join(os.fsencode(flat),
                                                                     b"bad\xff.jpg"))
    result = _predict(models["head"][0], flat, tmp_path / "out")
    assert len(_rows(result)) == 1
    assert [(s["id"], s["reason"]) for s in result.manifest["skipped"]] == [
        ("bad\\xff.jpg", NAME_REASON)]


def test_a_tfds_split_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        cache = embed.run(["--data", "tfds:beans", "--cache-dir", str(tmp_path / "cache"),
                           *TINY, "--augment-copies", "0", *IN_MEMORY])
        train_head.run(["--cache", cache.cache_dir, "--out", str(tmp_path / "head"), "--quiet",
                        "--head", "logistic"])
        result = _predict(str(tmp_path / "head"), "tfds:beans:test", tmp_path / "out")
    rows = _rows(result)
    assert len(rows) == 4 and all(i.startswith("beans-test") for i in rows)
    assert all(row["true_label"] in ("angular_leaf_spot", "bean_rust", "healthy")
               for row in rows.values())


def test_an_incremental_rerun_predicts_only_added_and_changed_images(models, faces_copy,
                                                                     tmp_path):
    first = _predict(models["head"][0], faces_copy, tmp_path, "--num-shards", "2")
    again = _predict(models["head"][0], faces_copy, tmp_path, "--num-shards", "2")
    assert again.reused and (again.predicted, again.reused_images) == (0, 24)
    for index in range(5):
        shutil.copy(faces_copy / "smiling" / f"smiling_{index:04d}.jpg",
                    faces_copy / "neutral" / f"added_{index}.jpg")
    shutil.copy(faces_copy / "smiling" / "smiling_0005.jpg",
                faces_copy / "neutral" / "neutral_0000.jpg")
    second = _predict(models["head"][0], faces_copy, tmp_path, "--num-shards", "2")
    assert second.out_dir != first.out_dir
    assert (second.manifest["predicted"], second.manifest["reused"]) == (6, 23)
    scratch = _predict(models["head"][0], faces_copy, tmp_path / "scratch",
                       "--num-shards", "2")
    assert scratch.manifest["predicted"] == 29
    _assert_same_rows(_rows(scratch), _rows(second))


def test_a_run_whose_parquet_was_deleted_is_predicted_again_not_reused(models, faces, tmp_path):
    first = _predict(models["head"][0], faces, tmp_path, "--num-shards", "2")
    shard = os.path.join(first.out_dir, first.manifest["shards"][0]["file"])
    os.remove(shard)
    again = _predict(models["head"][0], faces, tmp_path, "--num-shards", "2")
    assert not again.reused and again.out_dir == first.out_dir and os.path.isfile(shard)
    _assert_same_rows(_rows(again), _rows(first))


def _assert_same_rows(ours, theirs):
    """The same rows; probabilities equal to float32 rounding (docs/reliability.md: a row
    predicted in other company may differ in its last bits on some CPUs)."""
    assert ours.keys() == theirs.keys()
    for key, row in ours.items():
        for name, value in row.items():
            if isinstance(value, float) or (isinstance(value, list) and value
                                            and isinstance(value[0], float)):
                np.testing.assert_allclose(value, theirs[key][name], rtol=1e-4, atol=1e-6)
            else:
                assert value == theirs[key][name], (key, name)


def test_a_dropped_row_fails_the_job_and_publishes_nothing(models, faces, tmp_path,
                                                           monkeypatch):
    write = predict_shard.PredictShardFn.write

    def drop_last(self, state):
        state.results.pop()
        return write(self, state)

    monkeypatch.setattr(predict_shard.PredictShardFn, "write", drop_last)
    with pytest.raises(accounting.IncompleteRunError,
                       match=r"predict run incomplete: 1 of 24 records missing from "
                             r"predictions-00000-of-00001.parquet \(step PredictShard\)"):
        _predict(models["head"][0], faces, tmp_path)
    assert not [name for name in os.listdir(tmp_path) if not name.startswith(".")]


def test_bad_models_and_data_are_refused_in_one_line(models, faces, tmp_path):
    with pytest.raises(ValueError, match="expected a model.keras from jobs.finetune, a head"):
        _predict(str(tmp_path), faces, tmp_path / "out")
    with pytest.raises(ValueError, match="expected a folder, a glob, a .txt or .csv list"):
        _predict(models["head"][0], tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty'.*: no images found"):
        _predict(models["head"][0], tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match="SavedModel export has no embeddings"):
        _predict(models["exported"][0], faces, tmp_path / "out", "--with-embeddings")


def test_an_output_inside_the_data_is_refused_before_any_work(models, faces_copy):
    for out in (faces_copy, faces_copy / "predictions"):
        with pytest.raises(ValueError, match="--out .*(the same folder as|inside) --data"):
            _predict(models["head"][0], faces_copy, out)
    assert not (faces_copy / "predictions").exists()


def _graph_bytes(model, root, run_dir):
    spec = open_model(model)
    pipeline = beam.Pipeline()
    build_predict_pipeline(pipeline, open_inputs(str(root), spec.class_names), spec,
                           PredictConfig(model=model, data=str(root)), run_dir=str(run_dir))
    return len(pipeline.to_runner_api().SerializeToString())


def test_the_pipeline_graph_does_not_grow_with_the_number_of_images(models, tmp_path):
    sizes = []
    for count in (1_000, 100_000):
        folder = tmp_path / f"n{count}"
        folder.mkdir()
        for index in range(count):
            (folder / f"{index:06d}.jpg").touch()
        sizes.append(_graph_bytes(models["head"][0], folder, tmp_path / f"r{count}"))
    assert sizes[1] < 1_000_000 and abs(sizes[1] - sizes[0]) <= 0.1 * sizes[0]
