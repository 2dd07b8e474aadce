from __future__ import annotations

from typing import Any

import orjson
import pytest

from activity_audit.redaction import REDACTED, Redactor


def test_redacts_matching_keys_at_any_depth_whole_value() -> None:
    data = {
        "username": "ada",
        "password": "hunter2",
        "profile": {"api_key": {"nested": "x"}, "ssn": 123, "name": "Ada"},
        "payments": [{"credit_card": "4111"}, {"CVV": "123"}, "plain"],
        "Authorization": "Bearer x",
    }
    assert Redactor().redact(data) == {
        "username": "ada",
        "password": REDACTED,
        "profile": {"api_key": REDACTED, "ssn": REDACTED, "name": "Ada"},
        "payments": [{"credit_card": REDACTED}, {"CVV": REDACTED}, "plain"],
        "Authorization": REDACTED,
    }


def test_original_is_not_modified() -> None:
    data = {"token": "t", "inner": {"secret": "s"}}
    Redactor().redact(data)
    assert data == {"token": "t", "inner": {"secret": "s"}}


def test_headers_by_name_and_by_pattern() -> None:
    headers = {
        "Authorization": "Basic x", "Cookie": "a=b", "X-Api-Key": "k", "X-CSRFToken": "c",
        "Proxy-Authorization": "p", "Set-Cookie": "s", "X-Session-Id": "sid",
        "Accept": "application/json",
    }
    redacted = Redactor().redact_headers(headers)
    assert redacted == {k: REDACTED for k in headers if k != "Accept"} | {
        "Accept": "application/json"
    }


def test_wsgi_style_header_names() -> None:
    assert Redactor().is_sensitive_header("HTTP_AUTHORIZATION")
    assert Redactor(key_pattern=r"(?!)").is_sensitive_header("x_api_key")


def test_pairs_keep_repeats() -> None:
    pairs = [("q", "a"), ("token", "t1"), ("token", "t2")]
    assert Redactor().redact_pairs(pairs) == [("q", "a"), ("token", REDACTED), ("token", REDACTED)]


def test_custom_pattern_and_subclass() -> None:
    class Strict(Redactor):
        substitute = "***"

    assert Strict(key_pattern=r"(?i)^name$").redact({"name": "A", "password": "p"}) == {
        "name": "***", "password": "p",
    }


def test_repeated_row_shapes_stay_redacted_and_copied() -> None:
    # Rows of a JSON list share a key set; the cached decision must still see
    # nested values and sensitive keys, and return copies.
    redactor = Redactor()
    rows = [{"id": i, "name": f"n{i}"} for i in range(3)]
    rows.append({"id": 3, "name": {"password": "p"}})
    rows.append({"id": 4, "token": "t"})
    rows.append({"id": 5, "token": "u"})
    result = redactor.redact(rows)
    assert result == [
        {"id": 0, "name": "n0"}, {"id": 1, "name": "n1"}, {"id": 2, "name": "n2"},
        {"id": 3, "name": {"password": REDACTED}},
        {"id": 4, "token": REDACTED}, {"id": 5, "token": REDACTED},
    ]
    assert result[0] is not rows[0]


def test_header_decisions_are_remembered_per_name() -> None:
    redactor = Redactor()
    for _ in range(2):
        assert redactor.redact_headers({"Cookie": "c", "X-Auth-Token": "t", "Accept": "a"}) == {
            "Cookie": REDACTED, "X-Auth-Token": REDACTED, "Accept": "a",
        }


def test_subtree_too_deep_to_walk_is_redacted_whole() -> None:
    deep: object = {"password": "hunter2"}
    for _ in range(70):
        deep = {"nested": deep}
    flat = str(Redactor().redact({"top": deep, "name": "ok"}))
    assert "hunter2" not in flat
    assert "'name': 'ok'" in flat


_ROWS = [{"id": i, "name": f"n{i}", "active": True, "score": 1.5, "note": None} for i in range(4)]
PARSED_DOCUMENTS = [
    _ROWS,
    [*_ROWS, {"id": 9, "name": {"password": "p"}}],
    [*_ROWS, {"id": 9, "name": ["x", {"token": "t"}]}],
    [*_ROWS, {"id": 9, "api_key": "k"}],
    {"count": 4, "next": None, "results": _ROWS},
    {"count": 5, "results": [*_ROWS, {"id": 9, "tags": [{"secret": "s"}]}]},
    {"outer": {"inner": {"rows": [*_ROWS, {"auth": "a"}]}}},
    {"text": "{[not a container]}", "rows": _ROWS},
    {"a": [1, "x", None, [2, {"cvv": 3}]], "password": {"nested": "whole value"}},
    [[], {}, [[{"session": 1}]]],
    [],
    {},
]


@pytest.mark.parametrize("document", PARSED_DOCUMENTS)
@pytest.mark.parametrize("with_source", [False, True])
def test_redact_parsed_equals_redact(document: object, with_source: bool) -> None:
    redactor = Redactor()
    text = orjson.dumps(document)
    expected = redactor.redact(orjson.loads(text))
    for _ in range(2):  # the second time from the key-set caches
        parsed = orjson.loads(text)
        result = redactor.redact_parsed(parsed, text if with_source else None)
        assert orjson.dumps(result) == orjson.dumps(expected)


def test_redact_parsed_works_in_place() -> None:
    parsed = orjson.loads(b'[{"a": 1, "password": "p"}, {"a": 2, "password": "q"}]')
    result = Redactor().redact_parsed(parsed)
    assert result is parsed
    assert parsed == [{"a": 1, "password": REDACTED}, {"a": 2, "password": REDACTED}]


def test_redact_parsed_too_deep_is_redacted_whole() -> None:
    for depth in range(60, 70):
        document: object = [{"id": 1}, {"token": "t"}]
        for _ in range(depth):
            document = {"nested": document}
        text = orjson.dumps(document)
        redactor = Redactor()
        assert orjson.dumps(redactor.redact_parsed(orjson.loads(text), text)) == orjson.dumps(
            redactor.redact(orjson.loads(text)))


def test_redact_parsed_uses_an_overridden_redact() -> None:
    class Marking(Redactor):
        def redact(self, data: Any, _depth: int = 0) -> Any:
            return {"marked": super().redact(data, _depth)}

    assert Marking().redact_parsed({"token": "t"}) == {"marked": {"token": REDACTED}}
