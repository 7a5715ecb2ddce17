"""`check_scalar`, `check_choice` and `check_apart`: the value back, or one line naming it."""
import numbers

import pytest

from pipeline.validation import check_apart, check_choice, check_scalar


@pytest.mark.parametrize("x, kwargs", [
    (0.2, {"min_val": 0.0, "max_val": 1.0, "include_max": False}),
    (0, {"min_val": 0}),
    (5, {"max_val": 5}),
    (3, {}),
])
def test_a_valid_value_is_returned_unchanged(x, kwargs):
    assert check_scalar(x, "x", numbers.Real, **kwargs) is x


@pytest.mark.parametrize("x, target, message", [
    (True, int, "flag: expected int; got True of type bool"),
    ("3", int, "flag: expected int; got '3' of type str"),
    (1.5, (int,), "flag: expected .*; got 1.5 of type float"),
])
def test_a_bad_type_is_a_type_error(x, target, message):
    with pytest.raises(TypeError, match=message):
        check_scalar(x, "flag", target)


@pytest.mark.parametrize("x, kwargs, message", [
    (1.0, {"min_val": 0.0, "max_val": 1.0, "include_max": False},
     r"expected a value >= 0.0 and < 1.0; got 1.0"),
    (0, {"min_val": 0, "include_min": False}, r"expected a value > 0; got 0"),
    (11, {"max_val": 10}, r"expected a value <= 10; got 11"),
])
def test_a_value_out_of_bounds_is_a_value_error_naming_the_bounds(x, kwargs, message):
    with pytest.raises(ValueError, match=f"^size: {message}$"):
        check_scalar(x, "size", numbers.Real, **kwargs)


def test_check_choice_returns_the_choice_or_lists_the_valid_ones_sorted():
    assert check_choice("dense", "head", {"logistic", "dense"}) == "dense"
    with pytest.raises(ValueError, match=r"^head: expected one of dense, logistic; got 'forest'$"):
        check_choice("forest", "head", {"logistic", "dense"})


@pytest.mark.parametrize("out, message", [
    ("photos", "the same folder as --data"),
    ("photos/predictions", "inside --data"),
])
def test_an_output_that_is_or_lies_inside_an_input_is_refused(tmp_path, out, message):
    (tmp_path / "photos").mkdir()
    with pytest.raises(ValueError, match=f"^--out '{tmp_path / out}': {message} "):
        check_apart(str(tmp_path / out), "--out", (str(tmp_path / "photos"), "--data"))


def test_separate_folders_tfds_and_remote_paths_pass(tmp_path):
    (tmp_path / "photos").mkdir()
    for data in (str(tmp_path / "photos"), "tfds:beans", "gs://bucket/photos"):
        assert check_apart(str(tmp_path / "predictions"), "--out", (data, "--data")) == str(
            tmp_path / "predictions")
