"""Small checkers that validate a value at a boundary and return it.

Each raises `ValueError` (bad value) or `TypeError` (bad type) with a one-line message of the form
"expected ...; got ...", in the manner of scikit-learn's `check_scalar`.
"""

__all__ = ["check_scalar", "check_choice"]


def check_scalar(x, name, target_type, *, min_val=None, max_val=None, include_min=True,
                 include_max=True):
    """Checks that `x` is a scalar of `target_type` within bounds and returns it.

    Args:
        x: the value.
        name: its name, used in the message.
        target_type: the expected type or tuple of types (`int`, `float`, `numbers.Real`).
        min_val: lower bound, or None. Defaults to `None`.
        max_val: upper bound, or None. Defaults to `None`.
        include_min: whether `min_val` itself is allowed. Defaults to `True`.
        include_max: whether `max_val` itself is allowed. Defaults to `True`.

    Returns:
        `x`, unchanged.

    Raises:
        TypeError: `x` is not of `target_type` (booleans are never numbers here).
        ValueError: `x` is out of bounds.

    Example:
        >>> check_scalar(0.2, "val_fraction", float, min_val=0.0, max_val=1.0, include_max=False)
        0.2
    """
    if isinstance(x, bool) or not isinstance(x, target_type):
        expected = getattr(target_type, "__name__", str(target_type))
        raise TypeError(f"{name}: expected {expected}; got {x!r} of type {type(x).__name__}")
    low_ok = min_val is None or (x >= min_val if include_min else x > min_val)
    high_ok = max_val is None or (x <= max_val if include_max else x < max_val)
    if not (low_ok and high_ok):
        low = "" if min_val is None else f"{'>=' if include_min else '>'} {min_val}"
        high = "" if max_val is None else f"{'<=' if include_max else '<'} {max_val}"
        bounds = " and ".join(b for b in (low, high) if b)
        raise ValueError(f"{name}: expected a value {bounds}; got {x!r}")
    return x


def check_choice(x, name, choices):
    """Checks that `x` is one of `choices` and returns it.

    Raises:
        ValueError: with the sorted list of valid choices.
    """
    if x not in choices:
        valid = ", ".join(sorted(map(str, choices)))
        raise ValueError(f"{name}: expected one of {valid}; got {x!r}")
    return x
