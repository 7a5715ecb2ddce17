"""Small checkers that validate a value at a boundary and return it.

Each raises `ValueError` (bad value) or `TypeError` (bad type) with a one-line message of the form
"expected ...; got ...", in the manner of scikit-learn's `check_scalar`.
"""

import os

__all__ = ["check_scalar", "check_choice", "check_apart"]


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


def _local_folder(path):
    """The real path of a local folder named by a flag, or None (`tfds:`, `gs://`, a file)."""
    if not path or "://" in str(path) or str(path).startswith("tfds:"):
        return None
    path = str(path).rsplit(":", 1)[0] if not os.path.exists(path) else str(path)
    return os.path.realpath(path) if os.path.isdir(path) or not os.path.exists(path) else None


def check_apart(out, out_flag, *inputs):
    """Refuses an output folder that is or lies inside a folder the job reads (a folder that
    holds the inputs is left to the job: `pipeline.publish` refuses to replace one).

    Args:
        out: the output folder (local or not; only local folders are compared).
        out_flag: its flag, for the message (`--out`).
        *inputs: `(path, flag)` of each folder the job reads.

    Raises:
        ValueError: `--out 'x/p': inside --data 'x'` (the job would read its own output, or
            replace its input).

    Example:
        >>> check_apart("predictions", "--out", ("photos", "--data"))
        'predictions'
    """
    mine = _local_folder(out)
    for path, flag in inputs:
        theirs = _local_folder(path)
        if mine is None or theirs is None:
            continue
        if mine == theirs:
            raise ValueError(f"{out_flag} {out!r}: the same folder as {flag} {path!r}; write the "
                             "output to a folder of its own")
        if mine.startswith(theirs + os.sep):
            raise ValueError(f"{out_flag} {out!r}: inside {flag} {path!r}, which the job reads; "
                             "write the output outside it")
    return out
