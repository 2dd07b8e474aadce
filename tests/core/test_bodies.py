from __future__ import annotations

import json

from activity_audit.bodies import describe_body, describe_multipart, media_type
from activity_audit.redaction import REDACTED, Redactor

R = Redactor()


def describe(body: bytes, ctype: str | None, max_bytes: int = 1024, **kw: int) -> object:
    return describe_body(body, ctype, max_bytes=max_bytes, redactor=R, record_text=True, **kw)


def test_text_is_kept_by_type_and_size_unless_asked() -> None:
    for ctype in ("text/plain", "application/xml", "text/html; charset=utf-8",
                  "application/soap+xml", "application/x-ndjson"):
        body = b"<password>hunter2</password>"
        described = describe_body(body, ctype, max_bytes=1024, redactor=R)
        assert described == {"content_type": ctype.split(";")[0], "size": len(body)}


def test_media_type() -> None:
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type(None) == ""


def test_json_parsed_and_redacted() -> None:
    body = b'{"user": "ada", "password": "x", "items": [{"token": 1}]}'
    assert describe(body, "application/json") == {
        "user": "ada", "password": REDACTED, "items": [{"token": REDACTED}],
    }
    assert describe(b'{"a": 1}', "application/vnd.api+json") == {"a": 1}


def test_empty_body_is_none() -> None:
    assert describe(b"", "application/json") is None


def test_malformed_json_recorded_by_type_and_size() -> None:
    assert describe(b'{"password": "x"', "application/json") == {
        "content_type": "application/json", "size": 16, "invalid_json": True,
    }


def test_form_parsed_with_repeats_and_redaction() -> None:
    body = b"a=1&a=2&password=x&empty="
    assert describe(body, "application/x-www-form-urlencoded") == {
        "a": ["1", "2"], "password": REDACTED, "empty": "",
    }


def test_text_and_non_utf8() -> None:
    assert describe("héllo".encode(), "text/plain") == "héllo"
    assert describe(b"\xff\xfe", "text/plain") == {
        "content_type": "text/plain", "size": 2, "encoding_error": True,
    }
    assert describe("héllo".encode("latin-1"), "text/plain; charset=latin-1") == "héllo"


def test_binary_by_type_and_size() -> None:
    assert describe(b"\x89PNG....", "image/png") == {"content_type": "image/png", "size": 8}


def test_over_cap_is_truncated_not_parsed() -> None:
    big = b'{"k": "' + b"x" * 2000 + b'"}'
    assert describe(big, "application/json", max_bytes=100) == {
        "content_type": "application/json", "size": len(big), "truncated": True,
    }
    text = describe(("é" * 100).encode(), "text/plain", max_bytes=51)
    assert text == {"content_type": "text/plain", "size": 200, "truncated": True,
                    "text": "é" * 25}


def test_prefix_with_declared_size() -> None:
    assert describe(b"abc", "text/plain", max_bytes=2, size=10_000) == {
        "content_type": "text/plain", "size": 10_000, "truncated": True, "text": "ab",
    }


def test_multipart_lists_files_without_content() -> None:
    described = describe_multipart(
        [("title", "x"), ("csrfmiddlewaretoken", "t")],
        [("upload", "scan.pdf", 1234, "application/pdf")],
        R,
    )
    assert described == {
        "content_type": "multipart/form-data",
        "fields": {"title": "x", "csrfmiddlewaretoken": REDACTED},
        "files": [{"field": "upload", "name": "scan.pdf", "size": 1234,
                   "content_type": "application/pdf"}],
    }


def test_media_type_is_the_same_from_its_cache() -> None:
    values = [f"application/x-{i}+json; charset=utf-8" for i in range(600)]
    for _ in range(2):
        assert [media_type(v) for v in values] == [f"application/x-{i}+json" for i in range(600)]
    assert media_type("") == ""
    assert media_type(" TEXT/Plain ;q=1") == "text/plain"


def test_json_rows_with_a_nested_secret() -> None:
    rows = [{"id": i, "name": "n"} for i in range(5)] + [{"id": 5, "name": {"pass": "p"}}]
    body = json.dumps({"count": 6, "results": rows}).encode()
    assert describe(body, "application/json") == {
        "count": 6, "results": [*rows[:5], {"id": 5, "name": {"pass": REDACTED}}],
    }
