"""Every private Keras internal this project reaches, behind one documented function each.

Keras 3 has no public API for these, so an upgrade may move them: each is looked up when called,
by `_internal`, which names what is missing and the installed Keras version, and
`tests/test_keras_compat.py` calls every function here on tiny objects so that an upgrade fails
there first. This module is the one place to change when it does.

| function | Keras internal |
|---|---|
| `keras_home` | `keras.src.backend.config.keras_home()` |
| `optimizer_variables` | `Optimizer._trainable_variables` |
| `ema_variables` | `Optimizer._model_variables_moving_average` |
| `variable_index` | `Optimizer._get_variable_index(variable)` |
"""
import keras

__all__ = ["keras_home", "optimizer_variables", "ema_variables", "variable_index"]


def _internal(owner, path, *, owner_name):
    """`owner.<path>` (a dotted attribute path), or an AttributeError naming what is missing.

    Raises:
        AttributeError: this Keras lacks an attribute on the path; the message names it, the
            installed Keras version, and this module.
    """
    value = owner
    for name in path.split("."):
        if not hasattr(value, name):
            raise AttributeError(f"{owner_name}.{path}: expected in keras {keras.__version__}; "
                                 f"got no {name!r}: update pipeline/keras_compat.py")
        value = getattr(value, name)
    return value


def keras_home():
    """Keras's home folder (`~/.keras`, or `$KERAS_HOME`), where it caches downloaded weights."""
    return _internal(keras, "src.backend.config.keras_home", owner_name="keras")()


def optimizer_variables(optimizer):
    """The variables a built optimizer trains, in its own order (that of its moving averages)."""
    return _internal(optimizer, "_trainable_variables", owner_name=type(optimizer).__name__)


def ema_variables(optimizer):
    """The moving averages of a built optimizer with `use_ema=True`, in the order of
    `optimizer_variables`."""
    return _internal(optimizer, "_model_variables_moving_average",
                     owner_name=type(optimizer).__name__)


def variable_index(optimizer, variable):
    """The index of `variable` among `optimizer_variables(optimizer)`, as `update_step` sees it."""
    return _internal(optimizer, "_get_variable_index",
                     owner_name=type(optimizer).__name__)(variable)
