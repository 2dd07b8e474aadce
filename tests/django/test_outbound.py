"""Outbound calls from inside a Django request, and the AUDIT_* settings that shape them.

The views below call a real HTTP server on 127.0.0.1 through the audited
clients; the request goes through the real ``AuditLoggingMiddleware``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path
from pytest_httpserver import HTTPServer
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.request import Request as DRFRequest
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from activity_audit.context import bind
from activity_audit.httpx_client import AsyncAuditTransport
from activity_audit.levels import API
from activity_audit.protocols import HTTPClient
from activity_audit.schema import REDACTED, REQUEST_LOGGER
from activity_audit.testing import capture_events

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def call_lab(request: HttpRequest) -> JsonResponse:
    response = HTTPClient("lab").get(request.GET["url"], timeout=5)
    return JsonResponse({"downstream": response.status_code})


async def acall_lab(request: HttpRequest) -> JsonResponse:
    # An async view resolves its user itself; the sync actor resolver cannot
    # query the session from inside the event loop.
    await request.auser()
    async with httpx.AsyncClient(transport=AsyncAuditTransport("lab")) as client:
        response = await client.get(request.GET["url"], timeout=5)
    return JsonResponse({"downstream": response.status_code})


class DRFCallLab(APIView):
    authentication_classes = [TokenAuthentication]

    def get(self, request: DRFRequest) -> DRFResponse:
        response = HTTPClient("lab").get(request.query_params["url"], timeout=5)
        return DRFResponse({"downstream": response.status_code})


urlpatterns = [
    path("outbound/", call_lab),
    path("outbound-async/", acall_lab),
    path("outbound-drf/", DRFCallLab.as_view()),
]


@pytest.fixture
def lab(running_server: HTTPServer) -> Iterator[HTTPServer]:
    running_server.expect_request("/results").respond_with_json(
        {"result": "negative", "diagnosis": "none", "token": "t"}
    )
    yield running_server
    running_server.clear()


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        username="ada", email="ada@example.com", password="pw", first_name="Ada"
    )


def split(events: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    [internal] = [e for e in events if e.get("request_type") == "internal"]
    [external] = [e for e in events if e.get("request_type") == "external"]
    return internal, external


def assert_joined(internal: dict[str, Any], external: dict[str, Any], lab: HTTPServer,
                  user: Any, request_id: str) -> None:
    assert external["request_id"] == internal["request_id"] == request_id
    assert external["user_id"] == internal["user_id"] == str(user.pk)
    assert external["user_info"] == internal["user_info"]
    assert external["service_name"] == "lab"
    assert external["response_repr"]["status_code"] == 200
    [(downstream, _)] = lab.log
    assert downstream.headers["X-Request-ID"] == request_id
    version, trace_id, span, _flags = downstream.headers["traceparent"].split("-")
    assert (version, trace_id) == ("00", TRACE_ID)
    assert span != "00f067aa0ba902b7"


def test_outbound_call_joins_the_request(client: Client, lab: HTTPServer, user: Any) -> None:
    client.force_login(user)
    with capture_events(REQUEST_LOGGER) as events:
        response = client.get("/outbound/", {"url": lab.url_for("/results")},
                              HTTP_X_REQUEST_ID="req-abc-123", HTTP_TRACEPARENT=PARENT)
    assert response.json() == {"downstream": 200}
    internal, external = split(events)
    assert_joined(internal, external, lab, user, "req-abc-123")
    assert external["response_repr"]["body"]["token"] == REDACTED


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_async_view_with_httpx(lab: HTTPServer, user: Any) -> None:
    async_client = AsyncClient()
    try:
        await async_client.aforce_login(user)
        with capture_events(REQUEST_LOGGER) as events:
            response = await async_client.get(
                "/outbound-async/", {"url": lab.url_for("/results")},
                headers={"X-Request-ID": "req-async-1", "traceparent": PARENT},
            )
    finally:
        # The ORM ran in asgiref's thread-sensitive worker thread: close its
        # connection, or PostgreSQL refuses to drop the test database.
        await sync_to_async(connections.close_all)()
    assert response.json() == {"downstream": 200}
    internal, external = split(events)
    assert_joined(internal, external, lab, user, "req-async-1")


def test_drf_token_user_resolved_late(client: Client, lab: HTTPServer, user: Any) -> None:
    token = Token.objects.create(user=user)
    with capture_events(REQUEST_LOGGER) as events:
        response = client.get("/outbound-drf/", {"url": lab.url_for("/results")},
                              HTTP_AUTHORIZATION=f"Token {token.key}",
                              HTTP_X_REQUEST_ID="req-drf-1", HTTP_TRACEPARENT=PARENT)
    assert response.status_code == 200
    internal, external = split(events)
    assert_joined(internal, external, lab, user, "req-drf-1")
    # DRF loaded the user inside the view: the outbound event describes it in full.
    assert external["user_info"]["email"] == "ada@example.com"


def test_default_is_emitted_at_api_level(lab: HTTPServer) -> None:
    """The documented LOGGING routes audit.request at level API: the default reaches it."""
    logger = logging.getLogger(REQUEST_LOGGER)
    saved = logger.level
    logger.setLevel(API)
    try:
        with capture_events(REQUEST_LOGGER) as events:
            HTTPClient("lab").get(lab.url_for("/results"), timeout=5)
    finally:
        logger.setLevel(saved)
    [event] = events
    assert event["level"] == "API"


@pytest.mark.parametrize("name", ["AUDIT_LOG_EXTERNAL_REQUESTS", "SHOULD_LOG_EXTERNAL_REQUESTS"])
def test_logging_external_requests_off(name: str, lab: HTTPServer) -> None:
    client = HTTPClient("lab")  # created before the override: settings are read per call
    with override_settings(**{name: False}), capture_events(REQUEST_LOGGER) as events, \
            bind(request_id="rid-off"):
        assert client.get(lab.url_for("/results"), timeout=5).status_code == 200
    assert events == []
    # Correlation does not depend on logging.
    assert lab.log[0][0].headers["X-Request-ID"] == "rid-off"


@override_settings(SHOULD_LOG_EXTERNAL_REQUESTS=False, AUDIT_LOG_EXTERNAL_REQUESTS=True)
def test_new_name_wins_over_old(lab: HTTPServer) -> None:
    with capture_events(REQUEST_LOGGER) as events:
        HTTPClient("lab").get(lab.url_for("/results"), timeout=5)
    assert len(events) == 1


@override_settings(
    AUDIT_OUTBOUND_REQUEST_ID_HEADER="X-Correlation-ID",
    AUDIT_REDACT_KEYS=r"(?i)diagnosis",
    AUDIT_REDACT_HEADERS=["X-Internal-Route"],
)
def test_header_name_and_redaction_settings(lab: HTTPServer) -> None:
    with capture_events(REQUEST_LOGGER) as events, bind(request_id="rid-c"):
        HTTPClient("lab").get(lab.url_for("/results"), headers={"X-Internal-Route": "r7"},
                              timeout=5)
    sent = lab.log[0][0].headers
    assert sent["X-Correlation-ID"] == "rid-c"
    assert "X-Request-ID" not in sent
    [event] = events
    assert event["response_repr"]["body"] == {
        "result": "negative", "diagnosis": REDACTED, "token": "t",
    }
    assert event["request_repr"]["headers"]["X-Internal-Route"] == REDACTED
    assert event["request_repr"]["headers"]["X-Correlation-ID"] == "rid-c"


@override_settings(AUDIT_MAX_BODY_BYTES=8)
def test_max_body_bytes_setting(lab: HTTPServer) -> None:
    with capture_events(REQUEST_LOGGER) as events:
        HTTPClient("lab").get(lab.url_for("/results"), timeout=5)
    body = events[0]["response_repr"]["body"]
    assert body["truncated"] is True
    assert body["content_type"] == "application/json"


@pytest.mark.parametrize("enabled", [False, True])
def test_log_text_bodies_setting(enabled: bool, lab: HTTPServer) -> None:
    lab.expect_request("/page").respond_with_data(
        "<form><input name=csrf value=abc123></form>", content_type="text/html"
    )
    client = HTTPClient("lab")  # created before the override: settings are read per call
    with override_settings(AUDIT_LOG_TEXT_BODIES=enabled), \
            capture_events(REQUEST_LOGGER) as events:
        client.post(lab.url_for("/page"), data=b"line one\nline two",
                    headers={"Content-Type": "text/plain"}, timeout=5)
    [event] = events
    if enabled:
        assert event["request_repr"]["body"] == "line one\nline two"
        assert event["response_repr"]["body"] == "<form><input name=csrf value=abc123></form>"
    else:
        assert event["request_repr"]["body"] == {"content_type": "text/plain", "size": 17}
        assert event["response_repr"]["body"] == {"content_type": "text/html", "size": 43}
