"""Awkward requests: the response is byte-identical with and without the middleware."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from activity_audit.formatters import AuditFormatter
from activity_audit.schema import REQUEST_LOGGER
from activity_audit.testing import capture_events

pytestmark = pytest.mark.django_db

MIDDLEWARE_PATH = "activity_audit.middleware.AuditLoggingMiddleware"
WITHOUT = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]


def _upload(content: bytes, name: str) -> io.BytesIO:
    f = io.BytesIO(content)
    f.name = name
    return f


# (id, method, path, kwargs for Client.generic or a dict for Client.post, extra settings)
CORPUS: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = [
    ("empty-json", "POST", "/plain/echo-json/", {"data": b"",
                                                "content_type": "application/json"}, {}),
    ("empty-json-drf", "POST", "/api/echo/", {"data": b"",
                                             "content_type": "application/json"}, {}),
    ("malformed-json", "POST", "/plain/echo-json/", {"data": b'{"a": ',
                                                    "content_type": "application/json"}, {}),
    ("malformed-json-drf", "POST", "/api/echo/", {"data": b'{"a": ',
                                                 "content_type": "application/json"}, {}),
    ("non-utf8-json", "POST", "/plain/echo-json/", {"data": b'{"a": "\xe9\xff"}',
                                                   "content_type": "application/json"}, {}),
    ("non-utf8-json-drf", "POST", "/api/echo/", {"data": b'{"a": "\xe9\xff"}',
                                                "content_type": "application/json"}, {}),
    ("drf-json", "POST", "/api/echo/", {"data": b'{"a": [1, 2], "password": "p"}',
                                       "content_type": "application/json"}, {}),
    ("huge-headers", "GET", "/plain/whoami/", {"HTTP_X_BIG": "a" * 100_000,
                                               "HTTP_COOKIE": "c=" + "b" * 8000}, {}),
    ("unicode-path", "GET", "/plain/ünïcode/ø/", {}, {}),
    ("unicode-query", "GET", "/plain/ping/", {"QUERY_STRING": "q=%C3%BC&r=%FF%FE"}, {}),
    ("head", "HEAD", "/plain/ping/", {}, {}),
    ("options", "OPTIONS", "/plain/ping/", {}, {}),
    ("options-drf", "OPTIONS", "/api/echo/", {}, {}),
    ("over-limit-form", "POST", "/plain/echo-form/",
     {"data": b"a=" + b"x" * 5000, "content_type": "application/x-www-form-urlencoded"},
     {"DATA_UPLOAD_MAX_MEMORY_SIZE": 1000}),
    ("over-limit-json", "POST", "/plain/echo-json/",
     {"data": json.dumps({"a": "x" * 5000}).encode(), "content_type": "application/json"},
     {"DATA_UPLOAD_MAX_MEMORY_SIZE": 1000}),
    ("over-limit-unread", "POST", "/plain/ignore-body/",
     {"data": b"x" * 5000, "content_type": "application/octet-stream"},
     {"DATA_UPLOAD_MAX_MEMORY_SIZE": 1000}),
    ("over-limit-drf", "POST", "/api/echo/",
     {"data": json.dumps({"a": "x" * 5000}).encode(), "content_type": "application/json"},
     {"DATA_UPLOAD_MAX_MEMORY_SIZE": 1000}),
    ("over-limit-multipart-field", "POST", "/plain/upload/",
     {"post": {"a": "x" * 5000, "f": b"bytes"}}, {"DATA_UPLOAD_MAX_MEMORY_SIZE": 1000}),
    ("big-body-unread", "POST", "/plain/ignore-body/",
     {"data": b"y" * 300_000, "content_type": "text/plain"}, {}),
    ("big-body-read-stream", "POST", "/plain/read-stream/",
     {"data": bytes(range(256)) * 1000, "content_type": "application/octet-stream"}, {}),
    ("small-body-read-stream", "POST", "/plain/read-stream/",
     {"data": b'{"x": 1}', "content_type": "application/json"}, {}),
    ("read-partial", "POST", "/plain/read-partial/",
     {"data": b"0123456789" * 10, "content_type": "text/plain"}, {}),
    ("multipart-upload", "POST", "/plain/upload/",
     {"post": {"note": "n", "f": b"FILE" * 50_000}}, {}),
    ("multipart-unread", "POST", "/plain/ignore-body/", {"post": {"note": "n", "f": b"F" * 10}},
     {}),
    ("multipart-drf", "POST", "/api/echo/", {"post": {"note": "n", "f": b"F" * 10}}, {}),
    ("too-many-fields", "POST", "/plain/echo-form/",
     {"data": "&".join(f"k{i}=v" for i in range(50)).encode(),
      "content_type": "application/x-www-form-urlencoded"},
     {"DATA_UPLOAD_MAX_NUMBER_FIELDS": 10}),
    ("too-many-fields-unread", "POST", "/plain/ignore-body/",
     {"post": {f"k{i}": "v" for i in range(50)}}, {"DATA_UPLOAD_MAX_NUMBER_FIELDS": 10}),
    ("bad-content-length", "POST", "/plain/echo/",
     {"data": b"abc", "content_type": "text/plain", "CONTENT_LENGTH": "nope"}, {}),
    ("stream-response", "GET", "/plain/stream/", {}, {}),
    ("file-response", "GET", "/plain/file/", {}, {}),
    ("binary-echo", "PUT", "/plain/echo/", {"data": bytes(range(256)),
                                           "content_type": "application/octet-stream"}, {}),
    ("view-error-404", "DELETE", "/plain/status/404/", {}, {}),
]


def _send(client: Client, method: str, path: str, kwargs: dict[str, Any]) -> Any:
    kwargs = dict(kwargs)
    if "post" in kwargs:
        data = {k: _upload(v, "f.bin") if isinstance(v, bytes) else v
                for k, v in kwargs.pop("post").items()}
        return client.post(path, data, **kwargs)
    data = kwargs.pop("data", b"")
    content_type = kwargs.pop("content_type", "application/octet-stream")
    return client.generic(method, path, data, content_type, **kwargs)


def _snapshot(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    content = (b"".join(response.streaming_content) if response.streaming
               else response.content)
    headers = sorted((k, v) for k, v in response.items() if k != "X-Request-ID")
    return response.status_code, headers, content


@pytest.mark.parametrize(("method", "path", "kwargs", "extra_settings"),
                         [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_response_identical_and_line_valid(
    method: str, path: str, kwargs: dict[str, Any], extra_settings: dict[str, Any]
) -> None:
    with override_settings(**extra_settings):
        with override_settings(MIDDLEWARE=WITHOUT):
            baseline = _snapshot(_send(Client(raise_request_exception=False), method, path,
                                       kwargs))
        with capture_events(REQUEST_LOGGER) as events:
            audited_response = _send(Client(raise_request_exception=False), method, path,
                                     kwargs)
            audited = _snapshot(audited_response)
    assert audited == baseline
    assert audited_response["X-Request-ID"]
    assert len(events) == 1
    record = logging.makeLogRecord({"name": REQUEST_LOGGER, "levelno": 22, "levelname": "API",
                                    "msg": events[0]["message"]})
    record.__dict__.update({k: v for k, v in events[0].items()
                            if k not in ("timestamp", "level", "name", "message")})
    line = AuditFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["response_repr"]["status_code"] == baseline[0]
    assert parsed["request_repr"]["method"] == method


def test_file_content_never_recorded() -> None:
    with capture_events(REQUEST_LOGGER) as events:
        _send(Client(), "POST", "/plain/upload/", {"post": {"f": b"TOPSECRETFILE" * 10}})
        _send(Client(), "POST", "/plain/ignore-body/", {"post": {"f": b"TOPSECRETFILE" * 10}})
    assert "TOPSECRETFILE" not in json.dumps(events)
    assert [e["request_repr"]["body"]["files"][0]["size"] for e in events] == [130, 130]
