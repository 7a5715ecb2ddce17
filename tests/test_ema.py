import keras
import numpy as np
import pytest

from pipeline.training.ema import EmaCandidates, ema_momentum


@pytest.mark.parametrize("steps, momentum", [(100, 0.99), (4, 0.9), (0, 0.9)])
def test_momentum_averages_over_about_one_epoch(steps, momentum):
    assert ema_momentum(steps) == pytest.approx(momentum)


class _Record(keras.callbacks.Callback):
    def __init__(self, into):
        super().__init__()
        self.into = into

    def on_epoch_end(self, epoch, logs=None):
        self.into.append([w.copy() for w in self.model.get_weights()])


def _fit(*callbacks):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.1, use_ema=True, ema_momentum=0.5),
                  loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    averages = []
    snapshot = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: averages.append(
        [v.numpy().copy() for v in model.optimizer._model_variables_moving_average]))
    model.fit(x, x.sum(axis=1, keepdims=True), batch_size=8, epochs=2, verbose=0,
              shuffle=False, callbacks=[snapshot, *callbacks])
    return averages


def test_selection_sees_the_average_and_training_goes_on_from_the_trained_weights():
    ema, seen, after, plain = EmaCandidates(), [], [], []
    averages = _fit(ema.swap_in, _Record(seen), ema.swap_out, _Record(after))
    _fit(_Record(plain))
    for epoch in range(2):
        for got, average in zip(seen[epoch], averages[epoch]):
            np.testing.assert_allclose(got, average)
        assert not np.allclose(seen[epoch][0], after[epoch][0])
        # training is unchanged by the swaps: it goes on from the trained weights
        for got, trained in zip(after[epoch], plain[epoch]):
            np.testing.assert_array_equal(got, trained)
