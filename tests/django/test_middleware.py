"""AuditLoggingMiddleware through Django's test client (sync and async)."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import AsyncClient, Client, override_settings
from rest_framework.authtoken.models import Token

from activity_audit.formatters import AuditFormatter
from activity_audit.middleware import AuditLoggingMiddleware
from activity_audit.redaction import Redactor
from activity_audit.schema import (
    BASE_KEYS,
    INTERNAL_REQUEST_MESSAGE,
    MODEL_LOGGER,
    REDACTED,
    REQUEST_KEYS,
    REQUEST_LOGGER,
)
from activity_audit.testing import capture_events
from tests.testapp.models import Patient

pytestmark = pytest.mark.django_db

MIDDLEWARE_PATH = "activity_audit.middleware.AuditLoggingMiddleware"


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        "ada", password="pw-secret", email="ada@example.org", first_name="Ada"
    )


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    with capture_events(REQUEST_LOGGER) as captured:
        yield captured


def only(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(events) == 1, events
    return events[0]


def test_request_record_golden_keys(client: Client, events: list[dict[str, Any]]) -> None:
    client.get("/plain/ping/")
    record = only(events)
    assert list(record) == [*BASE_KEYS, *REQUEST_KEYS]
    assert set(record["request_repr"]) == {
        "method", "path", "scheme", "query_params", "headers", "client_ip", "user_agent",
        "user", "body",
    }
    assert set(record["response_repr"]) == {"status_code", "headers", "body"}
    assert record["message"] == INTERNAL_REQUEST_MESSAGE
    assert record["level"] == "API"
    assert record["request_type"] == "internal"
    assert record["protocol"] == "http"
    assert record["service_name"] == "test-service"


def test_json_get_request_and_response(client: Client, events: list[dict[str, Any]]) -> None:
    response = client.get("/plain/ping/?a=1&a=2&b=x", HTTP_USER_AGENT="pytest-agent")
    record = only(events)
    req, resp = record["request_repr"], record["response_repr"]
    assert req["method"] == "GET"
    assert req["path"] == "/plain/ping/"
    assert req["query_params"] == {"a": ["1", "2"], "b": "x"}
    assert req["client_ip"] == "127.0.0.1"
    assert req["user_agent"] == "pytest-agent"
    assert req["body"] is None
    assert resp == {"status_code": 200, "headers": resp["headers"], "body": {"ok": True}}
    assert resp["headers"]["Content-Type"] == "application/json"
    assert isinstance(record["execution_time"], float)
    assert record["execution_time"] > 0
    assert record["error_message"] is None
    # A generated request id, returned to the client.
    assert uuid.UUID(record["request_id"])
    assert response["X-Request-ID"] == record["request_id"]


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("abc-123_DEF.456:7/8+9=@", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("bad id", False),
        ("evil\r\nInjected: yes", False),
        ("-leading-dash", False),
        ("ünïcode", False),
    ],
)
def test_incoming_request_id_is_validated(
    client: Client, events: list[dict[str, Any]], incoming: str, kept: bool
) -> None:
    response = client.get("/plain/ping/", HTTP_X_REQUEST_ID=incoming)
    record = only(events)
    assert (record["request_id"] == incoming) is kept
    if not kept:
        assert uuid.UUID(record["request_id"])
    assert response["X-Request-ID"] == record["request_id"]


@override_settings(AUDIT_REQUEST_ID_HEADER="X-Correlation-ID")
def test_request_id_header_is_configurable(client: Client, events: list[dict[str, Any]]) -> None:
    response = client.get("/plain/ping/", HTTP_X_CORRELATION_ID="corr-1",
                          HTTP_X_REQUEST_ID="ignored")
    assert only(events)["request_id"] == "corr-1"
    assert response["X-Correlation-ID"] == "corr-1"


def test_traceparent_trace_id(client: Client, events: list[dict[str, Any]]) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    client.get("/plain/ping/", HTTP_TRACEPARENT=f"00-{trace}-00f067aa0ba902b7-01")
    client.get("/plain/ping/", HTTP_TRACEPARENT="00-" + "0" * 32 + "-00f067aa0ba902b7-01")
    client.get("/plain/ping/", HTTP_TRACEPARENT="garbage")
    assert [e["trace_id"] for e in events] == [trace, None, None]


def test_anonymous_user_is_null(client: Client, events: list[dict[str, Any]]) -> None:
    client.get("/plain/whoami/")
    record = only(events)
    assert record["user_id"] is None
    assert record["user_info"] == {}
    assert record["request_repr"]["user"] is None


def test_session_user_resolved_by_view(
    client: Client, user: Any, events: list[dict[str, Any]],
    django_assert_num_queries: Any,
) -> None:
    client.force_login(user)
    # Session + user: what the view's request.user costs; auditing adds nothing.
    with django_assert_num_queries(2):
        client.get("/plain/whoami/")
    record = only(events)
    assert record["user_id"] == str(user.pk)
    assert record["user_info"]["email"] == "ada@example.org"
    assert record["request_repr"]["user"] == str(user.pk)


def test_session_user_not_touched_by_view(
    client: Client, user: Any, events: list[dict[str, Any]],
    django_assert_num_queries: Any,
) -> None:
    client.force_login(user)
    # Only the session lookup Django's auth would do; no user-table query.
    with django_assert_num_queries(1) as ctx:
        response = client.get("/plain/ping/")
    assert "auth_user" not in ctx.captured_queries[0]["sql"]
    record = only(events)
    assert record["user_id"] == str(user.pk)
    # The session was read but not left marked accessed: no Vary: Cookie.
    assert "Vary" not in response
    assert record["response_repr"]["headers"].get("Vary") is None


def test_anonymous_request_makes_no_query(
    client: Client, events: list[dict[str, Any]], django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):
        client.get("/plain/ping/")
    assert only(events)["user_id"] is None


def test_drf_token_user_and_query_count(
    client: Client, user: Any, events: list[dict[str, Any]], django_assert_num_queries: Any
) -> None:
    token = Token.objects.create(user=user)
    Patient.objects.create(name="Bob")
    # Token (with user) + list: the view's own queries only.
    with django_assert_num_queries(2):
        response = client.get("/api/patients/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    record = only(events)
    assert record["user_id"] == str(user.pk)
    assert record["user_info"]["first_name"] == "Ada"
    assert record["request_repr"]["headers"]["Authorization"] == REDACTED
    assert record["response_repr"]["body"][0]["name"] == "Bob"


def test_drf_session_user_query_count(
    client: Client, user: Any, events: list[dict[str, Any]], django_assert_num_queries: Any
) -> None:
    client.force_login(user)
    with django_assert_num_queries(3):  # session, user, list
        client.get("/api/patients/")
    assert only(events)["user_id"] == str(user.pk)


def test_drf_json_body_read_from_stream_is_recorded(
    client: Client, user: Any, events: list[dict[str, Any]]
) -> None:
    token = Token.objects.create(user=user)
    response = client.post("/api/patients/", {"name": "Cy", "notes": "n", "api_key": "k-1"},
                           content_type="application/json",
                           HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 201
    record = only(events)
    assert record["request_repr"]["body"] == {"name": "Cy", "notes": "n", "api_key": REDACTED}
    assert record["response_repr"]["status_code"] == 201
    assert record["response_repr"]["body"]["name"] == "Cy"


def test_drf_patch(client: Client, user: Any, events: list[dict[str, Any]]) -> None:
    token = Token.objects.create(user=user)
    patient = Patient.objects.create(name="Dee")
    response = client.patch(f"/api/patients/{patient.pk}/", {"notes": "updated"},
                            content_type="application/json",
                            HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    record = only(events)
    assert record["request_repr"]["method"] == "PATCH"
    assert record["request_repr"]["body"] == {"notes": "updated"}
    assert record["user_id"] == str(user.pk)


def test_drf_unauthenticated_is_logged_as_401(
    client: Client, events: list[dict[str, Any]]
) -> None:
    response = client.get("/api/patients/", HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code == 401
    record = only(events)
    assert record["response_repr"]["status_code"] == 401
    assert record["user_id"] is None
    assert record["request_repr"]["headers"]["Authorization"] == REDACTED


def test_login_and_logout_views_attribute_late(
    client: Client, user: Any, events: list[dict[str, Any]]
) -> None:
    client.post("/plain/login/", {"username": "ada", "password": "pw-secret"})
    client.post("/plain/logout/")
    login_record, logout_record = events
    # The user logged in inside the view: seen because the actor is read late.
    assert login_record["user_id"] == str(user.pk)
    assert login_record["request_repr"]["body"]["fields"] == {"username": "ada",
                                                              "password": REDACTED}
    assert logout_record["user_id"] is None


def test_view_exception_logged_and_reraised(
    client: Client, events: list[dict[str, Any]]
) -> None:
    with pytest.raises(ValueError, match="boom"):
        client.get("/plain/boom/")
    record = only(events)
    assert record["response_repr"]["status_code"] == 500
    assert record["error_message"] == "ValueError: boom\r\nwith a newline"


def test_exception_propagating_through_middleware_is_logged_and_reraised(
    user: Any, rf: Any
) -> None:
    def failing(request: Any) -> Any:
        raise RuntimeError("deep failure")

    middleware = AuditLoggingMiddleware(failing)
    request = rf.get("/plain/ping/")
    with capture_events(REQUEST_LOGGER) as captured, pytest.raises(RuntimeError) as info:
        middleware(request)
    assert str(info.value) == "deep failure"
    record = only(captured)
    assert record["response_repr"]["status_code"] == 500
    assert record["error_message"] == "RuntimeError: deep failure"


@pytest.mark.parametrize("code", [400, 403, 404, 418, 500, 503])
def test_error_statuses_logged(client: Client, events: list[dict[str, Any]], code: int) -> None:
    response = client.get(f"/plain/status/{code}/")
    assert response.status_code == code
    record = only(events)
    assert record["response_repr"]["status_code"] == code
    # Text bodies are kept by type and size unless AUDIT_LOG_TEXT_BODIES is on.
    assert record["response_repr"]["body"] == {"content_type": "text/plain", "size": 10}


@override_settings(AUDIT_LOG_TEXT_BODIES=True)
def test_text_bodies_recorded_when_asked(client: Client, events: list[dict[str, Any]]) -> None:
    client.get("/plain/status/418/")
    assert only(events)["response_repr"]["body"] == "status 418"


def test_text_request_body_kept_by_type_and_size(
    client: Client, events: list[dict[str, Any]]
) -> None:
    soap = b"<Envelope><Password>hunter2</Password></Envelope>"
    client.post("/plain/echo/", soap, content_type="application/soap+xml")
    record = only(events)
    assert record["request_repr"]["body"] == {
        "content_type": "application/soap+xml", "size": len(soap)}
    assert "hunter2" not in json.dumps(record)


def test_unknown_url_404(client: Client, events: list[dict[str, Any]]) -> None:
    assert client.get("/no/such/page/").status_code == 404
    assert only(events)["response_repr"]["status_code"] == 404


def test_redaction_everywhere(client: Client, events: list[dict[str, Any]]) -> None:
    secrets = ["hdr-auth-1", "cookie-1", "apikey-1", "csrf-1", "custom-1", "qp-1", "body-1",
               "body-2", "tok-123", "pw-123", "resp-key-123", "proxy-1"]
    client.post(
        "/plain/secrets/?user_token=qp-1&page=2",
        {"user": "ada", "password": "body-1",
         "nested": [{"card_number": "body-2", "ok": True}]},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer hdr-auth-1",
        HTTP_PROXY_AUTHORIZATION="Basic proxy-1",
        HTTP_COOKIE="sessionid=cookie-1",
        HTTP_X_API_KEY="apikey-1",
        HTTP_X_CSRFTOKEN="csrf-1",
        HTTP_X_AUTH_THING="custom-1",
    )
    record = only(events)
    line = AuditFormatter().format(captured_record(record))
    for secret in secrets:
        assert secret not in line, secret
    req, resp = record["request_repr"], record["response_repr"]
    assert req["query_params"] == {"user_token": REDACTED, "page": "2"}
    assert req["body"] == {"user": "ada", "password": REDACTED,
                           "nested": [{"card_number": REDACTED, "ok": True}]}
    for header in ("Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key",
                   "X-Csrftoken", "X-Auth-Thing"):
        assert req["headers"][header] == REDACTED
    assert resp["body"] == {"user": "ada", "access_token": REDACTED,
                            "nested": [{"password": REDACTED, "keep": 1}]}
    assert resp["headers"]["X-Api-Key"] == REDACTED


@override_settings(AUDIT_REDACT_KEYS=r"(?i)^page$", AUDIT_REDACT_HEADERS=["X-Tenant"])
def test_redaction_is_configurable(client: Client, events: list[dict[str, Any]]) -> None:
    client.get("/plain/ping/?page=2&token=visible", HTTP_X_TENANT="t-1")
    req = only(events)["request_repr"]
    assert req["query_params"] == {"page": REDACTED, "token": "visible"}
    assert req["headers"]["X-Tenant"] == REDACTED


@override_settings(AUDIT_REDACTOR="tests.django.test_middleware.UpperRedactor")
def test_redactor_class_is_swappable(client: Client, events: list[dict[str, Any]]) -> None:
    client.get("/plain/ping/?password=x")
    assert only(events)["request_repr"]["query_params"] == {"password": "***"}


class UpperRedactor(Redactor):
    substitute = "***"


def captured_record(event: dict[str, Any]) -> logging.LogRecord:
    """A LogRecord carrying ``event`` the way emit() builds it."""
    attrs = {k: v for k, v in event.items() if k not in BASE_KEYS}
    record = logging.makeLogRecord({"name": REQUEST_LOGGER, "levelno": 22, "levelname": "API",
                                    "msg": event["message"]})
    record.__dict__.update(attrs)
    return record


# -- URL, method and status filters --------------------------------------------------------


def test_unregistered_default_admin_not_logged_but_context_bound(
    client: Client, events: list[dict[str, Any]]
) -> None:
    response = client.get("/admin/ping/", HTTP_X_REQUEST_ID="admin-req-1")
    assert response.status_code == 200
    assert events == []
    # The scope is bound for unlogged paths too: the id still comes back.
    assert response["X-Request-ID"] == "admin-req-1"


@override_settings(AUDIT_UNREGISTERED_URLS_EXTRA=[r"^/plain/ping"])
def test_unregistered_extra(client: Client, events: list[dict[str, Any]]) -> None:
    client.get("/plain/ping/")
    client.get("/plain/whoami/")
    assert [e["request_repr"]["path"] for e in events] == ["/plain/whoami/"]


@override_settings(AUDIT_REGISTERED_URLS=[r"^/api/"])
def test_registered_urls_only(client: Client, events: list[dict[str, Any]]) -> None:
    client.get("/plain/ping/")
    client.get("/api/patients/")
    assert [e["request_repr"]["path"] for e in events] == ["/api/patients/"]


@override_settings(AUDIT_LOG_METHODS=["post"])
def test_log_methods(client: Client, events: list[dict[str, Any]]) -> None:
    client.get("/plain/ping/")
    client.post("/plain/ping/")
    assert [e["request_repr"]["method"] for e in events] == ["POST"]


@override_settings(AUDIT_LOG_STATUS_CODES=[404, 500])
def test_log_status_codes(client: Client, events: list[dict[str, Any]]) -> None:
    client.get("/plain/ping/")
    client.get("/plain/status/404/")
    assert [e["response_repr"]["status_code"] for e in events] == [404]


def test_disabled_logger_builds_nothing(client: Client) -> None:
    logger = logging.getLogger(REQUEST_LOGGER)
    old = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        response = client.get("/plain/ping/", HTTP_X_REQUEST_ID="still-bound")
    finally:
        logger.setLevel(old)
    assert response["X-Request-ID"] == "still-bound"


# -- bodies ----------------------------------------------------------------------------------


def test_form_body(client: Client, events: list[dict[str, Any]]) -> None:
    client.post("/plain/echo-form/", {"a": ["1", "2"], "secret_word": "x"})
    body = only(events)["request_repr"]["body"]
    # The test client sends a dict as multipart.
    assert body["fields"] == {"a": ["1", "2"], "secret_word": REDACTED}
    assert body["files"] == []


def test_urlencoded_form_body(client: Client, events: list[dict[str, Any]]) -> None:
    client.post("/plain/echo-form/", "a=1&a=2&secret_word=x",
                content_type="application/x-www-form-urlencoded")
    assert only(events)["request_repr"]["body"] == {"a": ["1", "2"], "secret_word": REDACTED}


@pytest.mark.parametrize("path", ["/plain/upload/", "/plain/ignore-body/"])
def test_multipart_records_metadata_never_content(
    client: Client, events: list[dict[str, Any]], path: str
) -> None:
    content = b"FILE-CONTENT-MUST-NOT-APPEAR" * 10
    upload = io.BytesIO(content)
    upload.name = "scan.png"
    client.post(path, {"note": "hi", "password": "pw-9", "scan": upload})
    record = only(events)
    body = record["request_repr"]["body"]
    assert body["content_type"] == "multipart/form-data"
    assert body["fields"] == {"note": "hi", "password": REDACTED}
    assert body["files"] == [{"field": "scan", "name": "scan.png", "size": len(content),
                              "content_type": "image/png"}]
    assert "FILE-CONTENT" not in AuditFormatter().format(captured_record(record))


@override_settings(AUDIT_MAX_BODY_BYTES=1000)
def test_request_and_response_bodies_capped(
    client: Client, events: list[dict[str, Any]]
) -> None:
    payload = json.dumps({"data": "x" * 5000}).encode()
    response = client.post("/plain/echo/", payload, content_type="application/json")
    assert response.content == payload
    record = only(events)
    expected = {"content_type": "application/json", "size": len(payload), "truncated": True}
    assert record["request_repr"]["body"] == expected
    assert record["response_repr"]["body"] == expected


@override_settings(AUDIT_MAX_BODY_BYTES=100, AUDIT_LOG_TEXT_BODIES=True)
def test_text_body_truncated_keeps_prefix(client: Client, events: list[dict[str, Any]]) -> None:
    client.post("/plain/echo/", "é" * 200, content_type="text/plain; charset=utf-8")
    body = only(events)["request_repr"]["body"]
    assert body["truncated"] is True
    assert body["size"] == 400
    assert body["text"] == "é" * 50


@override_settings(AUDIT_MAX_BODY_BYTES=1000)
def test_unread_over_cap_body_is_not_read(client: Client, events: list[dict[str, Any]]) -> None:
    client.post("/plain/ignore-body/", b"z" * 5000, content_type="application/octet-stream")
    assert only(events)["request_repr"]["body"] == {
        "content_type": "application/octet-stream", "size": 5000, "truncated": True,
        "read": False,
    }


def test_view_reading_stream_body_still_recorded(
    client: Client, events: list[dict[str, Any]]
) -> None:
    response = client.post("/plain/read-stream/", b'{"k": "v", "token": "t"}',
                           content_type="application/json")
    assert response.json()["size"] == 24
    assert only(events)["request_repr"]["body"] == {"k": "v", "token": REDACTED}


@override_settings(AUDIT_LOG_TEXT_BODIES=True)
def test_view_reading_part_of_stream(client: Client, events: list[dict[str, Any]]) -> None:
    response = client.post("/plain/read-partial/", b"0123456789", content_type="text/plain")
    assert response.content == b"01234"
    assert only(events)["request_repr"]["body"] == "0123456789"


@override_settings(AUDIT_LOG_TEXT_BODIES=True)
def test_invalid_and_non_utf8_json(client: Client, events: list[dict[str, Any]]) -> None:
    client.post("/plain/echo-json/", b'{"password": "leak', content_type="application/json")
    client.post("/plain/echo-json/", '{"a": "é"}'.encode("latin-1"),
                content_type="application/json")
    client.post("/plain/echo/", "é".encode("latin-1"), content_type="text/plain")
    first, second, third = (e["request_repr"]["body"] for e in events)
    assert first == {"content_type": "application/json", "size": 18, "invalid_json": True}
    assert second["invalid_json"] is True
    assert third == {"content_type": "text/plain", "size": 1, "encoding_error": True}


def test_binary_response(client: Client, events: list[dict[str, Any]]) -> None:
    client.get("/plain/binary/")
    assert only(events)["response_repr"]["body"] == {
        "content_type": "application/octet-stream", "size": 256}


@pytest.mark.parametrize(("path", "ctype"), [("/plain/stream/", "text/plain"),
                                              ("/plain/file/", "application/pdf")])
def test_streaming_responses_not_consumed(
    client: Client, events: list[dict[str, Any]], path: str, ctype: str
) -> None:
    response = client.get(path)
    # The client consumes the stream after the middleware ran: nothing was taken.
    content = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert content in (b"chunk 0\nchunk 1\nchunk 2\n", b"%PDF-1.4 not really" * 10)
    assert only(events)["response_repr"]["body"] == {"streaming": True, "content_type": ctype}


# -- log injection ---------------------------------------------------------------------------


@override_settings(AUDIT_LOG_TEXT_BODIES=True)
def test_control_characters_never_break_the_line(
    client: Client, events: list[dict[str, Any]]
) -> None:
    nasty = "a\r\nb\x00c\x1b[31md\u2028e\x85f"
    client.post(
        "/plain/echo/%0D%0A%00evil?q=%0D%0Ainjected",
        json.dumps({"text": nasty}),
        content_type="application/json",
        HTTP_USER_AGENT="agent\r\nX-Fake: 1",
        HTTP_X_CUSTOM=nasty,
    )
    client.post("/plain/echo/", nasty, content_type="text/plain")
    formatter = AuditFormatter()
    for event in events:
        line = formatter.format(captured_record(event))
        assert "\n" not in line
        assert "\r" not in line
        assert not re.search(r"[\x00-\x1f\x7f]", line)
        assert json.loads(line)["request_repr"] == event["request_repr"]
    first = events[0]["request_repr"]
    assert first["path"] == "/plain/echo/\r\n\x00evil"
    assert first["query_params"] == {"q": "\r\ninjected"}
    assert first["body"] == {"text": nasty}
    assert events[1]["request_repr"]["body"] == nasty


# -- client IP ---------------------------------------------------------------------------------


def test_forwarded_header_ignored_from_untrusted_peer(
    client: Client, events: list[dict[str, Any]]
) -> None:
    client.get("/plain/ping/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert only(events)["request_repr"]["client_ip"] == "203.0.113.9"


@override_settings(AUDIT_TRUSTED_PROXIES=["10.0.0.0/8", "192.0.2.1"])
def test_forwarded_header_from_trusted_proxy(
    client: Client, events: list[dict[str, Any]]
) -> None:
    client.get("/plain/ping/", REMOTE_ADDR="10.1.2.3",
               HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7, 192.0.2.1, 10.9.9.9")
    client.get("/plain/ping/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="not-an-ip")
    client.get("/plain/ping/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="6.6.6.6")
    # The rightmost untrusted hop is the client; a spoofed left part is ignored.
    assert [e["request_repr"]["client_ip"] for e in events] == [
        "198.51.100.7", "10.1.2.3", "203.0.113.9"]


@override_settings(AUDIT_TRUSTED_PROXIES=["127.0.0.1"], AUDIT_CLIENT_IP_HEADER="X-Real-IP")
def test_client_ip_header_configurable(client: Client, events: list[dict[str, Any]]) -> None:
    client.get("/plain/ping/", HTTP_X_REAL_IP="2001:db8::1", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert only(events)["request_repr"]["client_ip"] == "2001:db8::1"


# -- override points and per-request state ------------------------------------------------------


class TenantAuditMiddleware(AuditLoggingMiddleware):
    def get_actor(self, request: Any) -> Any:
        return request.headers.get("X-Service-Account") or super().get_actor(request)

    def get_context(self, request: Any) -> dict[str, Any]:
        return {"tenant": request.headers.get("X-Tenant")}


@override_settings(MIDDLEWARE=[
    m if m != MIDDLEWARE_PATH else "tests.django.test_middleware.TenantAuditMiddleware"
    for m in settings.MIDDLEWARE
])
def test_override_points(events: list[dict[str, Any]]) -> None:
    Client().get("/plain/ping/", HTTP_X_SERVICE_ACCOUNT="svc-billing", HTTP_X_TENANT="acme")
    record = only(events)
    assert record["user_id"] == "svc-billing"
    assert record["extra"] == {"tenant": "acme"}


def test_no_request_state_on_instance(rf: Any, user: Any) -> None:
    middleware = AuditLoggingMiddleware(lambda request: __import__(
        "django.http", fromlist=["HttpResponse"]).HttpResponse(b"ok"))
    before = dict(vars(middleware))
    with capture_events(REQUEST_LOGGER):
        for path in ("/plain/ping/", "/admin/ping/"):
            request = rf.post(path, {"a": "1"})
            request.user = user
            middleware(request)
    assert vars(middleware) == before


# -- model events inside the request --------------------------------------------------------------


def test_model_events_carry_request_user_and_id(
    client: Client, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(user)
    with capture_events(REQUEST_LOGGER, MODEL_LOGGER) as captured, \
            django_capture_on_commit_callbacks(execute=True):
        client.post("/plain/patients/create/", {"name": "Eve"},
                    content_type="application/json", HTTP_X_REQUEST_ID="req-model-1")
        client.post("/plain/patients/create-as-user/", {"name": "Fay"},
                    content_type="application/json", HTTP_X_REQUEST_ID="req-model-2")
    creates = [e for e in captured if e["name"] == MODEL_LOGGER and e["event_type"] == "CREATE"]
    assert {e["model"] for e in creates} == {"Patient", "Note"}
    assert len(creates) == 3
    for event in creates:
        assert event["user_id"] == str(user.pk)
        assert event["request_id"] in ("req-model-1", "req-model-2")
    requests = [e for e in captured if e["name"] == REQUEST_LOGGER]
    assert [e["request_id"] for e in requests] == ["req-model-1", "req-model-2"]
    assert all(e["user_id"] == str(user.pk) for e in requests)


def test_drf_model_events_carry_token_user(
    client: Client, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    token = Token.objects.create(user=user)
    with capture_events(MODEL_LOGGER) as captured, \
            django_capture_on_commit_callbacks(execute=True):
        client.post("/api/patients/", {"name": "Gus"}, content_type="application/json",
                    HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_X_REQUEST_ID="req-drf-1")
    creates = [e for e in captured if e["event_type"] == "CREATE"]
    assert len(creates) == 2
    assert all(e["user_id"] == str(user.pk) and e["request_id"] == "req-drf-1"
               for e in creates)


# -- async ----------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_async_requests(user: Any) -> None:
    client = AsyncClient()
    await client.aforce_login(user)
    with capture_events(REQUEST_LOGGER, MODEL_LOGGER) as captured:
        whoami = await client.get("/async/whoami/", headers={"X-Request-ID": "async-1"})
        ping = await client.get("/async/ping/")
        created = await client.post("/async/patients/create/", {"name": "Hal"},
                                    content_type="application/json",
                                    headers={"X-Request-ID": "async-2"})
        anonymous = await AsyncClient().get("/async/whoami/")
        with pytest.raises(KeyError):
            await client.get("/async/boom/")
    assert whoami.json() == {"user_id": str(user.pk)}
    assert whoami["X-Request-ID"] == "async-1"
    assert created.status_code == 201
    assert "Vary" not in ping
    assert anonymous.json() == {"user_id": None}
    requests = [e for e in captured if e["name"] == REQUEST_LOGGER]
    assert [e["user_id"] for e in requests] == [str(user.pk)] * 3 + [None, str(user.pk)]
    assert requests[2]["request_repr"]["body"] == {"name": "Hal"}
    assert requests[4]["response_repr"]["status_code"] == 500
    assert requests[4]["error_message"] == "KeyError: 'async boom'"
    creates = [e for e in captured if e["name"] == MODEL_LOGGER and e["event_type"] == "CREATE"]
    assert len(creates) == 2
    assert all(e["user_id"] == str(user.pk) and e["request_id"] == "async-2" for e in creates)


def test_async_mode_is_native() -> None:
    import asyncio

    async def get_response(request: Any) -> Any:
        return None

    middleware = AuditLoggingMiddleware(get_response)
    assert asyncio.iscoroutinefunction(middleware)
    sync_middleware = AuditLoggingMiddleware(lambda request: None)
    assert not asyncio.iscoroutinefunction(sync_middleware)


# -- review findings: nothing hides a request, secrets stay out ---------------------------


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=10)
def test_long_query_string_cannot_hide_a_request(
    client: Client, events: list[dict[str, Any]]
) -> None:
    query = "&".join(f"a{i}=1" for i in range(20)) + "&token=t"
    assert client.get(f"/plain/ping/?{query}").status_code == 200
    params = only(events)["request_repr"]["query_params"]
    assert params["a19"] == "1"
    assert params["token"] == REDACTED


@pytest.mark.django_db(transaction=True)
@override_settings(AUDIT_READ_MODELS=["testapp.Patient"])
def test_streamed_export_reads_carry_the_request(client: Client, user: Any) -> None:
    from activity_audit.schema import MODEL_LOGGER

    Patient.objects.create(name="Ada")
    Patient.objects.create(name="Bob")
    client.force_login(user)
    with capture_events(MODEL_LOGGER, REQUEST_LOGGER) as captured:
        response = client.get("/plain/export/", headers={"X-Request-ID": "export-1"})
        assert b"".join(response.streaming_content) == b"Ada\nBob\n"  # type: ignore[attr-defined]
    reads = [e for e in captured if e.get("event_type") == "READ"]
    assert len(reads) == 1
    assert reads[0]["request_id"] == "export-1"
    assert reads[0]["user_id"] == str(user.pk)
    assert reads[0]["ids_total"] == 2


def test_url_headers_lose_their_secret_parameters(
    client: Client, events: list[dict[str, Any]]
) -> None:
    client.get("/plain/redirect-token/", headers={"Referer": "https://x.example/?password=pw"})
    record = only(events)
    location = record["response_repr"]["headers"]["Location"]
    assert "sess-123" not in location
    assert "tkn" not in location
    assert "state=ok" in location
    assert "pw" not in record["request_repr"]["headers"]["Referer"]


@pytest.mark.django_db(transaction=True)
def test_database_error_text_is_not_recorded(client: Client, events: list[dict[str, Any]]) -> None:
    client.raise_request_exception = False
    assert client.get("/plain/integrity-error/").status_code == 500
    record = only(events)
    assert record["error_message"].startswith("IntegrityError")
    assert "123-45-6789" not in json.dumps(record)


# -- the cheaper equivalents the middleware uses ------------------------------------------------


@pytest.mark.parametrize("extra", [
    {},
    {"HTTP_AUTHORIZATION": "Bearer t", "HTTP_X_FORWARDED_FOR": "1.2.3.4", "HTTP_": "empty"},
    {"CONTENT_TYPE": "text/plain", "HTTP_CONTENT_TYPE": "application/json"},
    {"HTTP_X_WEIRD_\u00dc": "latin-1 name"},
    {"HTTP_X_\u212a": "kelvin sign", "HTTP_X_K": "ascii k"},  # equal once lowercased
])
@pytest.mark.parametrize("accessed_first", [False, True])
def test_request_headers_as_django_reads_them(
    rf: Any, extra: dict[str, str], accessed_first: bool
) -> None:
    from activity_audit.middleware import _request_headers

    request = rf.post("/plain/ping/", b"{}", content_type="application/json", **extra)
    if accessed_first:
        assert request.headers
    fresh = rf.post("/plain/ping/", b"{}", content_type="application/json", **extra)
    expected = list(fresh.headers.items())
    for _ in range(2):  # the second time from the remembered names
        assert list(_request_headers(request).items()) == expected


def test_response_headers_and_membership_as_django_reads_them() -> None:
    from django.http import HttpResponse

    from activity_audit.middleware import _has_header, _response_headers

    response = HttpResponse(b"{}", content_type="application/json")
    response["X-Thing"] = "1"
    response["x-thing"] = "2"
    response["Location"] = "/next?token=t"
    assert _response_headers(response) == dict(response.items())
    assert _has_header(response, "x-THING")
    assert not _has_header(response, "X-Request-ID")


def test_path_decisions_follow_the_settings() -> None:
    from activity_audit.middleware import should_log_path

    assert should_log_path("/plain/ping/")
    assert not should_log_path("/admin/ping/")
    with override_settings(AUDIT_UNREGISTERED_URLS_EXTRA=[r"^/plain/"]):
        assert not should_log_path("/plain/ping/")
    with override_settings(AUDIT_REGISTERED_URLS=[r"^/api/"]):
        assert not should_log_path("/plain/ping/")
        assert should_log_path("/api/x/")
    assert should_log_path("/plain/ping/")
    long_path = "/plain/" + "x" * 1000  # too long to be remembered
    for _ in range(2):
        assert should_log_path(long_path)


def test_generated_request_ids_are_uuid4(client: Client, events: list[dict[str, Any]]) -> None:
    for _ in range(20):
        client.get("/plain/ping/")
    ids = [e["request_id"] for e in events]
    assert len(set(ids)) == 20
    for request_id in ids:
        parsed = uuid.UUID(request_id)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == request_id


@override_settings(AUDIT_LOG_METHODS=["pAtCh", "POST"])
def test_log_methods_any_case(client: Client, events: list[dict[str, Any]]) -> None:
    client.get("/plain/ping/")
    client.post("/plain/ping/")
    client.patch("/plain/ping/")
    assert [e["request_repr"]["method"] for e in events] == ["POST", "PATCH"]


def test_user_info_fields_follow_the_settings(
    client: Client, user: Any, events: list[dict[str, Any]]
) -> None:
    client.force_login(user)
    client.get("/plain/whoami/")
    with override_settings(AUDIT_USER_INFO_FIELDS=["username", "password"]):
        client.get("/plain/whoami/")
    client.get("/plain/whoami/")
    assert [e["user_info"] for e in events] == [
        {"email": "ada@example.org", "first_name": "Ada", "last_name": ""},
        {"username": "ada", "password": REDACTED},
        {"email": "ada@example.org", "first_name": "Ada", "last_name": ""},
    ]
