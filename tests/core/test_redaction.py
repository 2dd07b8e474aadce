from __future__ import annotations

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
