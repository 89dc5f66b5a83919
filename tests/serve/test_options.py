"""The request options: numbers in range, yes/no values, each refusal naming the option."""

from __future__ import annotations

import pytest

from timesformer.serve.errors import BadParameter
from timesformer.serve.options import parse_bool, parse_number


def test_numbers():
    opts = {
        "topk": "3",
        "stride": "0.5",
        "bad": "x",
        "nan": "nan",
        "flag": True,
        "zero": "0",
        "half": 2.5,
    }
    assert parse_number(opts, "topk", int, 5, low=1) == 3
    assert parse_number(opts, "missing", int, 5, low=1) == 5
    assert parse_number(opts, "stride", float, None, low=0, low_open=True) == 0.5
    for name in ("bad", "flag", "half", "stride"):
        with pytest.raises(BadParameter, match=f"{name} must be an integer"):
            parse_number(opts, name, int, None)
    with pytest.raises(BadParameter, match="nan must be a number"):
        parse_number(opts, "nan", float, None)
    with pytest.raises(BadParameter, match=r"more than 0"):
        parse_number(opts, "zero", float, None, low=0, low_open=True)
    with pytest.raises(BadParameter, match=r"in \[0, 0.25\]"):
        parse_number(opts, "stride", float, None, low=0, high=0.25)


def test_booleans():
    for text, value in (("true", True), ("1", True), ("on", True), ("No", False), (False, False)):
        assert parse_bool({"w": text}, "w", not value) is value
    assert parse_bool({}, "w", True) is True
    with pytest.raises(BadParameter, match="true or false"):
        parse_bool({"w": "maybe"}, "w", False)
