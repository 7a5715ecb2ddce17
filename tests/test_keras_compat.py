"""Tests for pipeline.keras_compat: the private Keras internals it reaches are still there.

When a Keras upgrade moves one, these fail naming the attribute and the installed version.
"""
import keras
import numpy as np
import pytest

from pipeline import keras_compat


def _reach(function, *args):
    """`function(*args)`, failing the test with the adapter's message when Keras moved it."""
    try:
        return function(*args)
    except AttributeError as err:
        pytest.fail(f"keras {keras.__version__} moved an internal that "
                    f"pipeline.keras_compat.{function.__name__} reaches: {err}", pytrace=False)


def _built_adam(**kwargs):
    variables = [keras.Variable(np.zeros(2, np.float32), name="first"),
                 keras.Variable(np.ones(3, np.float32), name="second")]
    optimizer = keras.optimizers.Adam(**kwargs)
    optimizer.build(variables)
    return optimizer, variables


def test_keras_home_is_a_folder_name():
    home = _reach(keras_compat.keras_home)
    assert isinstance(home, str) and home, f"keras {keras.__version__}: keras_home() -> {home!r}"


def test_optimizer_variables_are_the_built_variables_in_order():
    optimizer, variables = _built_adam()
    found = _reach(keras_compat.optimizer_variables, optimizer)
    assert [v.path for v in found] == [v.path for v in variables], (
        f"keras {keras.__version__}: Optimizer._trainable_variables no longer lists the built "
        "variables in order")


def test_ema_variables_match_the_optimizer_variables():
    optimizer, variables = _built_adam(use_ema=True)
    averages = _reach(keras_compat.ema_variables, optimizer)
    assert [tuple(a.shape) for a in averages] == [tuple(v.shape) for v in variables], (
        f"keras {keras.__version__}: Optimizer._model_variables_moving_average no longer has "
        "one average per variable, in their order")


def test_variable_index_counts_in_optimizer_order():
    optimizer, variables = _built_adam()
    indexes = [_reach(keras_compat.variable_index, optimizer, v) for v in variables]
    assert indexes == [0, 1], (
        f"keras {keras.__version__}: Optimizer._get_variable_index gave {indexes}")


def test_a_moved_internal_is_named_with_the_keras_version():
    with pytest.raises(AttributeError, match=rf"object\._gone: expected in keras "
                                             rf"{keras.__version__}; got no '_gone'"):
        keras_compat._internal(object(), "_gone", owner_name="object")
