"""The end-to-end model's parts: the dense layer copied from a cache's head, the learning-rate
schedule, per-layer learning rates, float targets and reading a fine-tuned model back."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.training import end_to_end
from pipeline.training.finetune import FinetuneConfig
from pipeline.training.heads import load_head


def test_the_model_carries_the_heads_dense_layer_and_maps_images_to_one_logit(tiny_cache,
                                                                              tiny_head):
    head = load_head(tiny_head)
    model = end_to_end.build_model(tiny_cache.manifest, head)
    for ours, theirs in zip(model.get_layer("head_logits").get_weights(),
                            head.model.get_layer("head_logits").get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert model.input_shape == (None, 48, 48, 3) and model.output_shape == (None, 1)
    assert end_to_end.backbone_of(model).name == "backbone"


def test_load_finetuned_needs_the_model_and_its_description(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.save(tmp_path / end_to_end.MODEL_FILE)
    with pytest.raises(ValueError, match="expected a model.keras with its model.json beside it"):
        end_to_end.load_finetuned(str(tmp_path))
    (tmp_path / end_to_end.MODEL_INFO).write_text('{"image_size": 48}')
    model, info = end_to_end.load_finetuned(str(tmp_path))
    assert info == {"image_size": 48} and model.output_shape == (None, 1)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    constant = FinetuneConfig(learning_rate=1e-3, warmup_epochs=0, schedule="constant")
    assert end_to_end.learning_rate_schedule(constant, 10) == 1e-3
    schedule = end_to_end.learning_rate_schedule(
        FinetuneConfig(epochs=5, learning_rate=1e-3, schedule="cosine", warmup_epochs=1), 10)
    rates = [float(schedule(step)) for step in (0, 5, 10, 30, 50)]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(5e-4) and rates[2] == pytest.approx(1e-3)
    assert rates[2] > rates[3] > rates[4] and rates[4] == pytest.approx(0.0, abs=1e-9)


def test_constant_rate_warms_up_then_stays():
    schedule = end_to_end.learning_rate_schedule(FinetuneConfig(
        epochs=5, learning_rate=1e-3, warmup_epochs=1, schedule="constant"), 10)
    rates = [float(schedule(step)) for step in (0, 5, 10, 30, 50, 80)]
    assert rates[:2] == [0.0, pytest.approx(5e-4)]
    assert rates[2:] == [pytest.approx(1e-3)] * 4


def test_warm_up_longer_than_training_warms_up_over_all_of_it():
    schedule = end_to_end.learning_rate_schedule(FinetuneConfig(epochs=1, learning_rate=1e-3,
                                                     warmup_epochs=3), 10)
    assert [float(schedule(step)) for step in (0, 5, 10)] == [
        0.0, pytest.approx(5e-4), pytest.approx(1e-3)]


def test_layer_scaled_adam_moves_each_layer_at_its_own_rate(tmp_path):
    def trained_steps(scales):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        outputs = keras.layers.Dense(1, name="head_logits")(keras.layers.Dense(3, name="body")(
            inputs))
        model = keras.Model(inputs, outputs)
        model.compile(end_to_end.LayerScaledAdam(1e-2, layer_scales=scales), loss="mse")
        before = [layer.get_weights()[0].copy() for layer in model.layers[1:]]
        model.fit(np.ones((8, 4)), np.full((8, 1), 5.0), epochs=3, verbose=0)
        return model, [np.abs(layer.get_weights()[0] - w).max()
                       for layer, w in zip(model.layers[1:], before)]

    _, (body, head) = trained_steps({})
    model, (scaled_body, scaled_head) = trained_steps({"head_logits": 0.1})
    assert scaled_body == pytest.approx(body, rel=0.01)  # Adam's steps: about the rate each
    assert scaled_head == pytest.approx(0.1 * head, rel=0.05)
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").optimizer.layer_scales == {
        "head_logits": 0.1}


@pytest.mark.parametrize("num_classes", [2, 3])
def test_label_smoothing_trains_on_smoothed_targets(num_classes):
    images = tf.data.Dataset.from_tensor_slices(
        (np.zeros((6, 4), np.float32), np.zeros(6, np.int64))).batch(3)  # all of class 0
    targets = np.concatenate([y.numpy() for _, y in end_to_end.soft_targets(images, num_classes)])
    assert targets.tolist() == ([[0.0]] * 6 if num_classes == 2 else [[1.0, 0.0, 0.0]] * 6)
    confident = [-20.0] if num_classes == 2 else [20.0, -20.0, -20.0]  # sure of class 0
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(
        len(confident), bias_initializer=keras.initializers.Constant(confident))(inputs))
    end_to_end.compile_model(model, num_classes=num_classes, learning_rate=1e-3)
    assert model.evaluate(images, verbose=0)[0] < 1e-6
    end_to_end.compile_model(model, num_classes=num_classes, learning_rate=1e-3,
                             label_smoothing=0.2)
    assert model.evaluate(end_to_end.soft_targets(images, num_classes), verbose=0)[0] > 1.0


def test_importing_this_module_is_enough_to_load_a_shipped_model(tmp_path):
    """A fresh process loads an ensemble of mirror-averaged members after this one import."""
    import subprocess
    import sys

    from pipeline.training.ensemble import ensemble_model
    from pipeline.training.tta import with_flip_tta

    def member(seed):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((4, 6, 3))
        return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))

    ensemble_model(with_flip_tta(member(0)), with_flip_tta(member(1)), 0.4, 3).save(
        tmp_path / "model.keras")
    done = subprocess.run([sys.executable, "-c", "import sys, keras, pipeline.training.end_to_end;"
                           " keras.models.load_model(sys.argv[1])", str(tmp_path / "model.keras")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
