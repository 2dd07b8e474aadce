from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

from activity_audit import _json


class Unprintable:
    def __str__(self) -> str:
        raise ValueError("no str")

    def __repr__(self) -> str:
        raise ValueError("no repr")


def test_decimal_is_exact_string() -> None:
    data = json.loads(_json.dumps({"amount": Decimal("12345678901234567890.10")}))
    assert data == {"amount": "12345678901234567890.10"}


def test_native_types() -> None:
    value = {
        "when": dt.datetime(2025, 8, 29, 8, 18, 54, tzinfo=dt.UTC),
        "day": dt.date(2025, 8, 29),
        "id": uuid.UUID("6f77b1e4-0000-4000-8000-000000000000"),
        "tags": {"b", "a"},
        "raw": b"\x00\xff",
        "span": dt.timedelta(seconds=1.5),
    }
    data = json.loads(_json.dumps(value))
    assert data == {
        "when": "2025-08-29T08:18:54+00:00",
        "day": "2025-08-29",
        "id": "6f77b1e4-0000-4000-8000-000000000000",
        "tags": ["a", "b"],
        "raw": {"base64": "AP8="},
        "span": 1.5,
    }


def test_values_orjson_refuses_fall_back_losslessly() -> None:
    big = 2**70
    data = json.loads(_json.dumps({"big": big, "bad": "x\ud800y"}))
    assert data["big"] == big
    assert data["bad"] == "x\ud800y"


def test_keys_that_are_not_strings_become_strings() -> None:
    # The fast attempt refuses them; the second one converts, at any depth.
    value = {"a": {1: "one", None: "none"}, 2: [{dt.date(2025, 8, 29): True}]}
    assert _json.dumps(value) == (
        b'{"a":{"1":"one","null":"none"},"2":[{"2025-08-29":true}]}'
    )


def test_unserializable_value_becomes_sentinel_not_exception() -> None:
    data = json.loads(_json.dumps({"obj": Unprintable(), "ok": 1}))
    assert data == {"obj": "<unserializable Unprintable>", "ok": 1}


def test_line_breaks_and_controls_stay_on_one_line() -> None:
    line = _json.dumps({"path": "/a\r\nb\x00\x1b[31m\u2028"})
    assert b"\n" not in line
    assert b"\r" not in line
    assert json.loads(line)["path"] == "/a\r\nb\x00\x1b[31m\u2028"


def test_jsonable_converts_to_native_types() -> None:
    value = _json.jsonable(
        {"d": Decimal("1.10"), 3: (dt.date(2020, 1, 2), uuid.UUID(int=1)), "s": frozenset([2, 1])}
    )
    assert value == {
        "d": "1.10",
        "3": ["2020-01-02", "00000000-0000-0000-0000-000000000001"],
        "s": [1, 2],
    }
    assert _json.jsonable(Unprintable()) == "<unserializable Unprintable>"
