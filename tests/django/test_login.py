"""Authentication events on ``audit.login``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.test import Client, RequestFactory

from activity_audit.handlers import AuditFileHandler
from activity_audit.levels import LOGIN
from activity_audit.schema import BASE_KEYS, LOGIN_KEYS, LOGIN_LOGGER, REQUEST_LOGGER
from activity_audit.testing import capture_events

pytestmark = pytest.mark.django_db

PASSWORD = "pw-very-secret-42"


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("ada", password=PASSWORD,
                                                 email="ada@example.org")


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    with capture_events(LOGIN_LOGGER) as captured:
        yield captured


def test_login_record_golden_keys(client: Client, user: Any,
                                  events: list[dict[str, Any]]) -> None:
    client.post("/plain/login/", {"username": "ada", "password": PASSWORD})
    assert len(events) == 1
    assert list(events[0]) == [*BASE_KEYS, *LOGIN_KEYS]
    assert events[0]["level"] == "LOGIN"
    assert events[0]["name"] == LOGIN_LOGGER


def test_login_through_a_request(client: Client, user: Any,
                                 events: list[dict[str, Any]]) -> None:
    with capture_events(REQUEST_LOGGER) as requests:
        response = client.post("/plain/login/", {"username": "ada", "password": PASSWORD},
                               HTTP_USER_AGENT="Browser/1.0", HTTP_X_REQUEST_ID="login-req-1",
                               REMOTE_ADDR="198.51.100.4")
    assert response.status_code == 200
    (event,) = events
    assert event["event_type"] == "LOGIN"
    assert event["success"] is True
    assert event["user_id"] == str(user.pk)
    assert event["user_info"]["email"] == "ada@example.org"
    assert event["username"] == "ada"
    assert event["client_ip"] == "198.51.100.4"
    assert event["user_agent"] == "Browser/1.0"
    assert event["request_id"] == "login-req-1"
    assert event["service_name"] == "test-service"
    # The same request id links the login event and the request event.
    assert requests[0]["request_id"] == "login-req-1"


def test_failed_login_records_only_the_username(
    client: Client, user: Any, events: list[dict[str, Any]]
) -> None:
    client.post("/plain/login/", {"username": "ada", "password": "wrong-guess-77"},
                HTTP_X_REQUEST_ID="failed-1")
    (event,) = events
    assert event["event_type"] == "LOGIN_FAILED"
    assert event["success"] is False
    assert event["user_id"] is None
    assert event["user_info"] == {}
    assert event["username"] == "ada"
    assert event["request_id"] == "failed-1"
    assert "wrong-guess-77" not in json.dumps(event)


def test_failed_login_credentials_reduced_to_username(
    user: Any, events: list[dict[str, Any]]
) -> None:
    request = RequestFactory().post("/login/", REMOTE_ADDR="192.0.2.5")
    authenticate(request, username="mallory\r\n", password="guess-1", otp_secret="otp-9",
                 api_token="tok-7")
    (event,) = events
    assert event["username"] == "mallory\r\n"
    assert event["client_ip"] == "192.0.2.5"
    text = json.dumps(event)
    for secret in ("guess-1", "otp-9", "tok-7", "otp_secret", "api_token"):
        assert secret not in text


def test_failed_login_username_is_bounded(events: list[dict[str, Any]]) -> None:
    authenticate(None, username="x" * 10_000, password="p")
    assert events[0]["username"] == "x" * 256


def test_logout(client: Client, user: Any, events: list[dict[str, Any]]) -> None:
    client.force_login(user)
    events.clear()
    client.post("/plain/logout/", HTTP_X_REQUEST_ID="logout-1")
    (event,) = events
    assert event["event_type"] == "LOGOUT"
    assert event["success"] is True
    assert event["user_id"] == str(user.pk)
    assert event["username"] == "ada"
    assert event["request_id"] == "logout-1"


def test_anonymous_logout(client: Client, events: list[dict[str, Any]]) -> None:
    client.post("/plain/logout/")
    (event,) = events
    assert event["event_type"] == "LOGOUT"
    assert event["user_id"] is None
    assert event["username"] is None


def test_login_outside_a_request(client: Client, user: Any,
                                 events: list[dict[str, Any]]) -> None:
    client.force_login(user)
    (event,) = events
    assert event["user_id"] == str(user.pk)
    assert event["request_id"] is None
    assert event["client_ip"] is None


def test_login_events_written_to_a_real_file(client: Client, user: Any, tmp_path: Path) -> None:
    handler = AuditFileHandler(str(tmp_path / "logs" / "login.log"))
    handler.setLevel(LOGIN)
    logger = logging.getLogger(LOGIN_LOGGER)
    logger.addHandler(handler)
    try:
        client.post("/plain/login/", {"username": "ada", "password": PASSWORD},
                    HTTP_USER_AGENT="agent\r\n{injected}")
        client.post("/plain/login/", {"username": "ada\nfake", "password": PASSWORD})
    finally:
        logger.removeHandler(handler)
        handler.close()
    lines = (tmp_path / "logs" / "login.log").read_text("utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event_type"] == "LOGIN"
    assert first["user_agent"] == "agent\r\n{injected}"
    assert second["event_type"] == "LOGIN_FAILED"
    assert second["username"] == "ada\nfake"
    assert PASSWORD not in "\n".join(lines)
