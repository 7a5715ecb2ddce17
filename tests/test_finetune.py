import json

import keras
import numpy as np
import pytest

from jobs import embed, finetune, train_head
from pipeline.features import cache
from pipeline.training.end_to_end import backbone_of, build_model, probabilities, set_trainable
from pipeline.training.finetune import FinetuneConfig
from pipeline.training.image_data import image_dataset, split_refs
from pipeline.training.heads import load_head
from pipeline.training.selection import validation_score
from pipeline.training import ensemble
from pipeline.training.ensemble import trained_model
from pipeline.training.tta import has_flip_tta
from tests.conftest import IN_MEMORY, TINY


@pytest.fixture(scope="module")
def trained(real_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    train_head.run(["--cache", real_cache, "--out", str(root / "head"), "--quiet",
                    "--epochs", "5"])
    return real_cache, str(root / "head"), root


def test_warm_start_parity_before_any_step(trained):
    cache_dir, head_dir, _ = trained
    manifest, head = cache.read_manifest(cache_dir), load_head(head_dir)
    model = build_model(manifest, head)
    _, val_refs = split_refs(manifest)
    assert manifest["config"]["face_crop"]  # GENKI-4K: faces, so cropped by default
    ours = probabilities(model, image_dataset(val_refs, 64, batch_size=8, face_crop=True), 2)
    cached = cache.load_split(cache_dir, "val", clean_only=True)
    assert [r.id for r in val_refs] == cached.ids.tolist()
    assert np.abs(ours - head.predict_proba(cached.embeddings)).max() < 1e-4


@pytest.mark.parametrize("config, first", [
    (FinetuneConfig(), 0), (FinetuneConfig(fine_tune_at=50), 50),
    (FinetuneConfig(unfreeze_last=10), None)])
def test_only_intended_layers_train_and_batchnorm_stays_frozen(trained, config, first):
    model = build_model(cache.read_manifest(trained[0]))
    start = set_trainable(model, config)
    layers = backbone_of(model).layers
    assert start == (len(layers) - 10 if first is None else first)
    for index, layer in enumerate(layers):
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        assert layer.trainable == (index >= start and not is_bn), layer.name


def test_fine_tune_at_beyond_the_backbone_is_refused(trained):
    model = build_model(cache.read_manifest(trained[0]))
    with pytest.raises(ValueError, match="expected a layer index below"):
        set_trainable(model, FinetuneConfig(fine_tune_at=10_000))


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("simulated kill")


def test_job_trains_saves_and_resumes_after_an_interruption(trained):
    cache_dir, head_dir, root = trained
    out = root / "tuned"
    head_epochs = len(load_head(head_dir).history["loss"])
    argv = ["--cache", cache_dir, "--head", head_dir, "--out", str(out), "--epochs", "2",
            "--patience", "5", "--batch-size", "16"]
    with pytest.raises(KeyboardInterrupt):
        finetune.run(argv, callbacks=[_Interrupt()])
    assert not out.exists()  # nothing published until the run is done
    assert (root / ".tuned.work" / "checkpoint.keras").exists()  # what --resume continues
    report = finetune.run([*argv, "--resume"])
    assert not (root / ".tuned.work").exists()
    epochs = [int(line.split(",")[0]) for line in
              (out / "training_log.csv").read_text().splitlines()[1:]]
    assert epochs == [head_epochs, head_epochs + 1]
    assert report["finetune_epochs"] == 2 and report["head_epochs"] == head_epochs
    _assert_shipped_as_reported(report, out, cache_dir, head_dir)
    assert report["warm_start_max_abs_diff"] < 1e-4
    assert len(report["history"]["loss"]) == head_epochs + 2
    for name in ("report.json", "index.html", "curves.png", "most_wrong.csv",
                 "head_vs_finetuned.csv", "training_log.csv"):
        assert (out / name).is_file(), name
    loaded = keras.models.load_model(out / "model.keras")
    _, val_refs = split_refs(cache.read_manifest(cache_dir))
    predicted = probabilities(loaded, image_dataset(val_refs, 64, batch_size=8, face_crop=True),
                              2).argmax(1)
    labels = np.array([r.label for r in val_refs])
    assert np.mean(predicted == labels) == pytest.approx(report["accuracy"])
    published = {name: (out / name).read_bytes() for name in ("model.keras", "report.json")}
    with pytest.raises(KeyboardInterrupt):  # a later run, killed: the good model stays whole
        finetune.run(argv, callbacks=[_Interrupt()])
    assert {name: (out / name).read_bytes() for name in published} == published


def test_an_out_folder_that_is_the_head_or_another_jobs_output_is_refused(trained, tmp_path):
    cache_dir, head_dir, _ = trained
    for out, message in ((head_dir, "the same folder as --head-dir"),
                         (cache_dir, "the same folder as --cache")):
        with pytest.raises(ValueError, match=message):
            finetune.run(["--cache", cache_dir, "--head", head_dir, "--out", out])
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="not an output of jobs.finetune"):
        finetune.run(["--cache", cache_dir, "--head", head_dir, "--out", str(tmp_path / "photos")])


def test_batchnorm_statistics_do_not_move_during_training(trained):
    manifest = cache.read_manifest(trained[0])
    model = build_model(manifest, load_head(trained[1]))
    set_trainable(model, FinetuneConfig())
    from pipeline.training.end_to_end import compile_model

    compile_model(model, num_classes=2, learning_rate=1e-3)
    bn = [layer for layer in backbone_of(model).layers
          if isinstance(layer, keras.layers.BatchNormalization)][0]
    before = [w.copy() for w in bn.get_weights()]
    train_refs, _ = split_refs(manifest)
    model.fit(image_dataset(train_refs, 64, batch_size=16), epochs=1, verbose=0)
    for old, new in zip(before, bn.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_head_of_another_kind_or_cache_is_refused(trained, tmp_path):
    cache_dir, _, _ = trained
    train_head.run(["--cache", cache_dir, "--out", str(tmp_path / "lr"), "--head", "logistic",
                    "--quiet"])
    with pytest.raises(ValueError, match="logistic head; fine-tuning warm-starts"):
        finetune.run(["--cache", cache_dir, "--head", str(tmp_path / "lr"), "--out",
                      str(tmp_path / "out")])


def test_list_layers(trained):
    lines = finetune.run(["--cache", trained[0], "--list-layers", "--fine-tune-at", "80"])
    assert lines[0].split()[0] == "0" and lines[0].split()[-1] == "False"
    assert lines[-1].split()[-1] == "True"


@pytest.fixture
def random_trained(tiny_cache, tiny_head):
    """A random-weights cache of the generated faces and its dense head."""
    return tiny_cache, tiny_head


def test_warm_start_is_exact_with_random_weights_too(random_trained):
    result, head_dir = random_trained
    manifest, head = result.manifest, load_head(head_dir)
    _, val_refs = split_refs(manifest)
    ours = probabilities(build_model(manifest, head), image_dataset(val_refs, 48, batch_size=8), 2)
    cached = cache.load_split(result.cache_dir, "val", clean_only=True)
    assert np.abs(ours - head.predict_proba(cached.embeddings)).max() < 1e-4


def test_mirrored_strategy_trains_with_one_cpu_replica(random_trained, tmp_path):
    result, head_dir = random_trained
    report = finetune.run(["--cache", result.cache_dir, "--head", head_dir,
                           "--out", str(tmp_path / "tuned"), "--epochs", "1",
                           "--distribute", "mirrored", "--batch-size", "8",
                           "--schedule", "cosine", "--tta", "none", "--no-ema"])
    assert report["config"]["distribute"] == "mirrored" and report["finetune_epochs"] == 1
    assert not report["flip_tta_tried"] and not report["flip_tta"]
    assert not has_flip_tta(keras.models.load_model(tmp_path / "tuned" / "model.keras"))
    assert report["config"]["schedule"] == "cosine" and not report["config"]["ema"]
    assert (tmp_path / "tuned" / "model.keras").is_file()


def _assert_shipped_as_reported(report, out, cache_dir, head_dir):
    """The default: model.keras is the ensemble of the last epoch and the head (or either one
    alone), its probabilities the average its report claims, its head member the head itself."""
    assert report["kept"] in ("ensemble", "finetuned", "warm_start")
    loaded = keras.models.load_model(out / "model.keras")
    manifest = cache.read_manifest(cache_dir)
    _, val_refs = split_refs(manifest)
    images = image_dataset(val_refs, manifest["config"]["image_size"], batch_size=8,
                           face_crop=manifest["config"].get("face_crop", False))
    cached = cache.load_split(cache_dir, "val", clean_only=True)
    head = load_head(head_dir).predict_proba(cached.embeddings)
    if report["kept"] == "warm_start":
        assert report["kept_epoch"] == 0
        np.testing.assert_allclose(probabilities(trained_model(loaded), images, 2), head,
                                   atol=1e-4)
        return
    assert report["kept_epoch"] == report["finetune_epochs"]  # the last epoch, no choosing
    weight = report["ensemble"]["weight"]
    if report["kept"] == "finetuned":  # all the weight on the fine-tuned model: shipped alone
        assert weight == 1.0 and not ensemble.is_ensemble(loaded)
        return
    assert 0 < weight < 1 and report["ensemble"]["images"] == len(val_refs)
    tuned_member, head_member = ensemble.members(loaded)
    both = [probabilities(m, images, 2) for m in (tuned_member, head_member)]
    np.testing.assert_allclose(probabilities(loaded, images, 2),
                               weight * both[0] + (1 - weight) * both[1], atol=1e-5)
    np.testing.assert_allclose(probabilities(trained_model(head_member), images, 2), head,
                               atol=1e-4)  # the head member is the head, untouched
    assert report["kept_model"].startswith(f"the ensemble of fine-tune epoch "
                                           f"{report['kept_epoch']} and the head")
    assert f"of the {len(val_refs)} validation images" in report["kept_reason"]
    assert set(report["ensemble"]["vs_head"]) >= {"difference", "low", "high"}


def _assert_kept_epoch_is_the_best_candidate(report, out):
    log = [line.split(",") for line in (out / "training_log.csv").read_text().splitlines()]
    columns = [log[0].index(name) for name in ("val_accuracy", "val_tta_accuracy")
               if name in log[0]]  # each epoch is scored with and without the mirror
    val_accuracy = [max(float(row[c]) for c in columns) for row in log[1:]]
    candidates = [report["warm_start_score"]["val_accuracy"], *val_accuracy]
    assert report["kept"] == ("warm_start" if report["kept_epoch"] == 0 else "finetuned")
    assert candidates[report["kept_epoch"]] == max(candidates)
    assert report["accuracy"] == pytest.approx(max(candidates))
    rows = dict(line.split(",", 1) for line in
                (out / "head_vs_finetuned.csv").read_text().splitlines())
    assert rows["kept"] == f",{report['kept']}" and rows["kept_epoch"] == f",{report['kept_epoch']}"


def test_validation_score_matches_keras_evaluate(random_trained):
    result, head_dir = random_trained
    model = build_model(result.manifest, load_head(head_dir))
    from pipeline.training.end_to_end import compile_model

    compile_model(model, num_classes=2, learning_rate=1e-3)
    _, val_refs = split_refs(result.manifest)
    val = image_dataset(val_refs, 48, batch_size=8)
    score = validation_score(model.predict(val, verbose=0), [r.label for r in val_refs], 2)
    loss, accuracy = model.evaluate(val, verbose=0)
    assert score == pytest.approx({"val_accuracy": accuracy, "val_loss": loss}, rel=1e-5)


@pytest.fixture(scope="module")
def easy_trained(tmp_path_factory):
    """Dark against bright noise images and a perfect head.

    Random-weight embeddings are tiny (about 1e-11), so the head trains on standardised ones.
    """
    from PIL import Image

    root = tmp_path_factory.mktemp("easy")
    rng = np.random.default_rng(0)
    for name, level in (("bright", 200), ("dark", 40)):
        (root / "data" / name).mkdir(parents=True)
        for index in range(10):
            pixels = np.clip(rng.normal(level, 20, (48, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / "data" / name / f"{index}.png")
    result = embed.run(["--data", str(root / "data"), *TINY, "--augment-copies", "0",
                        "--val-fraction", "0.3", "--cache-dir", str(root / "cache"),
                        *IN_MEMORY])
    (head,) = train_head.run(["--cache", result.cache_dir, "--out", str(root / "head"),
                              "--quiet", "--standardize", "--ensemble", "1"])
    assert head["accuracy"] == 1.0
    return result, str(root / "head")


def test_a_diverged_fine_tune_ships_the_head_alone(easy_trained, tmp_path, capsys):
    result, head_dir = easy_trained
    out = tmp_path / "tuned"
    report = finetune.run(["--cache", result.cache_dir, "--head", head_dir, "--out", str(out),
                           "--epochs", "2", "--learning-rate", "1e6", "--batch-size", "8"])
    assert report["kept"] == "warm_start" and report["kept_epoch"] == 0
    assert report["accuracy"] == report["head_vs_finetuned"]["head_accuracy"] == 1.0
    assert report["kept_model"].startswith("the warm-started head")
    _assert_shipped_as_reported(report, out, result.cache_dir, head_dir)


def test_a_fine_tune_that_cannot_help_keeps_the_warm_start(easy_trained, tmp_path, capsys):
    result, head_dir = easy_trained
    out = tmp_path / "tuned"
    finetune.main(["--cache", result.cache_dir, "--head", head_dir, "--out", str(out),
                   "--epochs", "2", "--learning-rate", "1e6", "--batch-size", "8",
                   "--keep", "best"])
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == "warm_start" and report["kept_epoch"] == 0
    assert report["best_finetune_score"]["val_accuracy"] < 1.0
    assert "kept warm_start: no fine-tune epoch beat the warm-started head" in (
        capsys.readouterr().out)
    title = "mobilenet_v2 + dense head fine-tuned on data (100 % of the training images)"
    assert report["title"] == f"{title}: kept {report['kept_model']}"
    assert report["kept_model"].startswith("the warm-started head")  # maybe with the mirror
    page = (out / "index.html").read_text()
    assert f"<h1>{title}: kept the warm-started head" in page
    assert "<strong>Kept: the warm-started head" in page and "No fine-tune epoch beat" in page
    assert report["data_name"] == "data"
    head = load_head(head_dir)
    cached = cache.load_split(result.cache_dir, "val", clean_only=True)
    _, val_refs = split_refs(result.manifest)
    loaded = keras.models.load_model(out / "model.keras")
    assert report["flip_tta_tried"]  # the default augmentation mirrors
    assert has_flip_tta(loaded) == report["flip_tta"]
    ours = probabilities(trained_model(loaded), image_dataset(val_refs, 48, batch_size=8), 2)
    assert np.abs(ours - head.predict_proba(cached.embeddings)).max() < 1e-4
    assert report["accuracy"] == report["head_vs_finetuned"]["head_accuracy"] == 1.0
    _assert_kept_epoch_is_the_best_candidate(report, out)


def test_label_smoothing_out_of_range_is_refused():
    with pytest.raises(ValueError, match="label_smoothing"):
        FinetuneConfig(label_smoothing=1.0)


@pytest.mark.parametrize("flags, expected", [
    (["--label-smoothing", "0.1", "--head-learning-rate-scale", "10"],
     {"label_smoothing": 0.1, "head_learning_rate_scale": 10.0, "mixup": 0.0}),
    (["--mixup", "0.4"], {"label_smoothing": 0.0, "mixup": 0.4})])
def test_job_fine_tunes_on_float_targets_and_with_a_faster_head(easy_trained, tmp_path, flags,
                                                                   expected):
    result, head_dir = easy_trained
    report = finetune.run(["--cache", result.cache_dir, "--head", head_dir, "--out",
                           str(tmp_path), "--epochs", "1", "--batch-size", "8", *flags])
    assert {k: report["config"][k] for k in expected} == expected
    assert np.isfinite(report["best_finetune_score"]["val_loss"])


def test_a_tfds_cache_fine_tunes_end_to_end_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        result = embed.run(["--data", "tfds:beans", "--cache-dir", str(tmp_path / "cache"),
                            *TINY, "--augment-copies", "0", *IN_MEMORY])
        train_head.run(["--cache", result.cache_dir, "--out", str(tmp_path / "head"),
                        "--quiet", "--epochs", "2", "--ensemble", "1"])
        report = finetune.run(["--cache", result.cache_dir, "--head", str(tmp_path / "head"),
                               "--out", str(tmp_path / "tuned"), "--epochs", "1",
                               "--batch-size", "4"])
    assert report["finetune_epochs"] == 1 and report["train_images"] == 4
    assert report["num_examples"] == 4 and report["warm_start_max_abs_diff"] < 1e-4
    assert report["title"].startswith("mobilenet_v2 + dense head fine-tuned on beans (100 % of")
    assert (tmp_path / "tuned" / "model.keras").is_file()
    assert not (tmp_path / "tuned" / "pixel_cache").exists()  # the images written for the run


def test_a_list_cache_fine_tunes_end_to_end(faces, tmp_path):
    from pipeline.data.sources import FolderSource

    rows = [f"{ref.path},{ref.label_name}" for ref in FolderSource(faces).refs()]
    (tmp_path / "train.csv").write_text("\n".join(["path,label", *rows]) + "\n")
    result = embed.run(["--data", str(tmp_path / "train.csv"), "--cache-dir",
                        str(tmp_path / "cache"), *TINY, "--augment-copies", "0", *IN_MEMORY])
    train_head.run(["--cache", result.cache_dir, "--out", str(tmp_path / "head"), "--quiet",
                    "--epochs", "2", "--ensemble", "1"])
    report = finetune.run(["--cache", result.cache_dir, "--head", str(tmp_path / "head"),
                           "--out", str(tmp_path / "tuned"), "--epochs", "1",
                           "--batch-size", "8"])
    assert report["finetune_epochs"] == 1
    assert report["train_images"] == result.manifest["counts"]["train"]["images"]
    assert report["warm_start_max_abs_diff"] < 1e-4
    assert (tmp_path / "tuned" / "model.keras").is_file()
