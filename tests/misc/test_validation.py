"""The package's one set of argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whiteboxdl.validation import (check_bounds, check_choice, check_class_index, check_number,
                                   check_positive)


@pytest.mark.parametrize("value, kwargs, expected", [
    (3, {}, 3.0), (np.float32(0.5), {}, 0.5), (torch.tensor(2), {"integer": True}, 2),
    ("7", {"parse": True, "integer": True}, 7), (None, {"allow_none": True}, None),
    (1.0, {"low": 1.0}, 1.0), (2, {"low": 0, "high": 2}, 2.0),
])
def test_accepted_numbers(value, kwargs, expected):
    got = check_number("x", value, **kwargs)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value, kwargs, words", [
    (True, {}, "finite number"), ("7", {}, "finite number"), (float("nan"), {}, "finite"),
    (float("inf"), {}, "finite"), (2.5, {"integer": True}, "whole number"),
    (1.0, {"low": 1.0, "low_open": True}, "> 1"), (3, {"high": 2}, "<= 2"),
    (0, {"low": 1, "high": 5}, r"in \[1, 5\]"), (None, {}, "got None"), ([1], {}, "got \\[1\\]"),
])
def test_refused_numbers_name_the_argument_and_the_range(value, kwargs, words):
    with pytest.raises(ValueError, match=rf"^x must be .*{words}"):
        check_number("x", value, **kwargs)


def test_choices_indices_bounds():
    assert check_positive("eps", None, allow_none=True) is None
    with pytest.raises(ValueError, match="> 0"):
        check_positive("eps", 0)
    assert check_choice("clip", None, ("every", None)) is None
    with pytest.raises(ValueError, match=r"clip must be one of \['every', None\], got 'all'"):
        check_choice("clip", "all", ("every", None))
    with pytest.raises(ValueError, match="one of"):
        check_choice("clip", [1], ("every",))                 # unhashable is refused, not a crash
    assert check_class_index("target", np.int64(3), 10) == 3
    with pytest.raises(ValueError, match="out of range.*10 classes"):
        check_class_index("target", -1, 10)
    with pytest.raises(TypeError, match="integer class index"):
        check_class_index("target", 3.0, 10)
    assert check_bounds("bounds", [0, 1]) == (0.0, 1.0)
    for bad in ((0,), (1, 0), "01", (0, float("inf"))):
        with pytest.raises(ValueError, match="bounds"):
            check_bounds("bounds", bad)
