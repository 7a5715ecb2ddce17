import keras
import numpy as np
import pytest

from pipeline.training.selection import KeepBest, kept_summary


def _tiny_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _score(accuracy, loss):
    return {"val_accuracy": accuracy, "val_loss": loss}


@pytest.mark.parametrize("epochs, kept", [
    ([_score(0.8, 0.6), _score(0.7, 0.1)], 0),
    ([_score(0.8, 0.4)], 1),
    ([_score(0.8, float("nan")), _score(0.9, 0.5)], 2),
    ([_score(float("nan"), float("nan"))], 0)])
def test_keep_best_judges_accuracy_then_loss_warm_start_included(tmp_path, epochs, kept):
    model = _tiny_model()
    (tmp_path / "best-epoch9.weights.h5").write_bytes(b"a previous run's")
    keep = KeepBest(str(tmp_path), patience=5, initial_epoch=7)
    keep.set_model(model)
    keep.start(model, _score(0.8, 0.5), resume=False)
    warm = model.get_weights()
    for index, logs in enumerate(epochs):
        model.set_weights([w + index + 1 for w in warm])
        keep.on_epoch_end(7 + index, logs)
    model.set_weights([w - 100 for w in warm])
    state = keep.restore(model)
    assert state["kept_epoch"] == kept
    np.testing.assert_array_equal(model.get_weights()[1], warm[1] + kept)
    assert kept_summary(state)["kept"] == ("warm_start" if kept == 0 else "finetuned")
    assert len(list(tmp_path.glob("best-epoch*.weights.h5"))) == 1


def test_keep_best_stops_after_patience_without_a_better_epoch_and_resumes_its_state(tmp_path):
    model = _tiny_model()
    keep = KeepBest(str(tmp_path), patience=2, initial_epoch=0)
    keep.set_model(model)
    keep.start(model, _score(0.8, 0.5), resume=False)
    keep.on_epoch_end(0, _score(0.6, 0.5))
    keep.on_epoch_end(1, _score(0.7, 0.5))
    assert not model.stop_training
    resumed = KeepBest(str(tmp_path), patience=2, initial_epoch=0)
    resumed.set_model(model)
    resumed.start(model, _score(0.0, 9.0), resume=True)
    resumed.on_epoch_end(2, _score(0.7, 0.6))
    assert not model.stop_training
    resumed.on_epoch_end(3, _score(0.7, 0.6))
    assert model.stop_training and resumed.state["warm_start"] == _score(0.8, 0.5)
    summary = kept_summary(resumed.state)
    assert summary["kept_epoch"] == 0
    assert summary["kept_reason"].startswith("no fine-tune epoch beat the warm-started head")
