"""`fit`: fine-tune epochs that keep the best candidate by validation and stop on patience
(`keep="best"`), or run the whole schedule and keep the last epoch (`keep="ensemble"`)."""
import keras
import numpy as np
import tensorflow as tf

from pipeline.training.epochs import fit
from pipeline.training.finetune import FinetuneConfig


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def _train():
    rng = np.random.default_rng(0)
    return tf.data.Dataset.from_tensor_slices((rng.normal(size=(8, 3)).astype(np.float32),
                                               np.ones((8, 1), np.float32))).batch(4)


def _scorer(accuracies, weights):
    """A scorer giving each epoch the next of `accuracies`, recording its weights."""
    scores = iter(accuracies)

    def scorer(model):
        weights.append(model.get_weights()[0].copy())
        accuracy = next(scores)
        return {"val_accuracy": accuracy}, {"val_accuracy": accuracy, "val_loss": 1.0}

    return scorer


def test_the_best_epoch_is_kept_and_patience_stops_the_run(tmp_path, capsys):
    weights = []  # epoch 1 beats the warm start (0.5), epoch 2 does not
    scorer = _scorer([0.9, 0.6, 0.95], weights)
    model = _model()
    history, state = fit(model, _train(), str(tmp_path), scorer=scorer,
                         config=FinetuneConfig(epochs=5, patience=1, ema=False, keep="best"),
                         warm_start_score={"val_accuracy": 0.5, "val_loss": 1.0})
    assert history["epoch"] == [1, 2] and len(history["loss"]) == 2
    assert state["kept_epoch"] == 1
    np.testing.assert_array_equal(model.get_weights()[0], weights[0])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["fine-tune epoch 1/5",
                                                      "fine-tune epoch 2/5"]
    for name in ("training_log.csv", "checkpoint.keras", "tensorboard"):
        assert (tmp_path / name).exists()


def test_a_warm_start_no_epoch_beats_is_what_the_model_ends_with(tmp_path):
    model = _model()
    warm = [w.copy() for w in model.get_weights()]
    _, state = fit(model, _train(), str(tmp_path), initial_epoch=3,
                   scorer=lambda m: ({}, {"val_accuracy": 0.1, "val_loss": 9.0}),
                   config=FinetuneConfig(epochs=2, patience=5, ema=False, keep="best"),
                   warm_start_score={"val_accuracy": 0.5, "val_loss": 1.0})
    assert state["kept_epoch"] == 0
    for ours, theirs in zip(model.get_weights(), warm):
        np.testing.assert_array_equal(ours, theirs)
    epochs = [line.split(",")[0] for line in
              (tmp_path / "training_log.csv").read_text().splitlines()[1:]]
    assert epochs == ["3", "4"]  # the curves go on from the head's epochs


def test_the_ensemble_rule_runs_every_epoch_and_keeps_the_last_whatever_validation_says(tmp_path):
    weights = []  # epoch 1 scores best: the rule must not care
    scorer = _scorer([0.9, 0.6, 0.4], weights)
    model = _model()
    history, state = fit(model, _train(), str(tmp_path), scorer=scorer,
                         config=FinetuneConfig(epochs=3, patience=1, ema=False),
                         warm_start_score={"val_accuracy": 0.95, "val_loss": 0.1})
    assert history["epoch"] == [1, 2, 3]  # no early stopping
    assert state["kept_epoch"] == 3 and state["best_finetune_epoch"] == 1
    np.testing.assert_array_equal(model.get_weights()[0], weights[-1])
