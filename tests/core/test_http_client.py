"""HTTPClient (requests) against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from activity_audit import protocols
from activity_audit.context import bind
from activity_audit.protocols import (
    AuditHTTPAdapter,
    HTTPClient,
    OutboundSettings,
    redact_url,
)
from activity_audit.redaction import Redactor
from activity_audit.schema import (
    BASE_KEYS,
    EXTERNAL_REQUEST_MESSAGE,
    REDACTED,
    REQUEST_KEYS,
    REQUEST_LOGGER,
)
from activity_audit.testing import capture_events
from tests.helpers import read_lines

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_json_exchange_is_one_json_line(server: HTTPServer, api_log: Path) -> None:
    server.expect_request("/patients").respond_with_json(
        {"id": 7, "token": "srv-secret"}, headers={"Set-Cookie": "sid=abc"}
    )
    with capture_events(REQUEST_LOGGER) as events:
        response = HTTPClient("ehr").get(
            server.url_for("/patients"),
            params={"q": "ada", "api_key": "k-123"},
            headers={"Authorization": "Bearer abc"},
            timeout=5,
        )
    assert response.json() == {"id": 7, "token": "srv-secret"}
    [event] = events
    [line] = read_lines(api_log)
    for record in (event, line):
        assert record["message"] == EXTERNAL_REQUEST_MESSAGE
        assert record["level"] == "API"
        assert record["service_name"] == "ehr"
        assert record["request_type"] == "external"
        assert record["protocol"] == "http"
        assert record["error_message"] is None
        assert isinstance(record["execution_time"], float)
        assert record["execution_time"] > 0
        req = record["request_repr"]
        assert req["method"] == "GET"
        assert req["endpoint"] == server.url_for(f"/patients?q=ada&api_key={REDACTED}")
        assert req["headers"]["Authorization"] == REDACTED
        assert req["body"] is None
        resp = record["response_repr"]
        assert resp["status_code"] == 200
        assert resp["body"] == {"id": 7, "token": REDACTED}
        assert resp["headers"]["Set-Cookie"] == REDACTED
    text = api_log.read_text("utf-8")
    assert "k-123" not in text
    assert "srv-secret" not in text
    assert "Bearer abc" not in text


def test_event_key_set(server: HTTPServer) -> None:
    server.expect_request("/k").respond_with_data("ok")
    with capture_events(REQUEST_LOGGER) as events:
        HTTPClient("svc").get(server.url_for("/k"), timeout=5)
    assert set(events[0]) == {*BASE_KEYS, *REQUEST_KEYS}


def test_json_and_form_request_bodies_are_parsed_and_redacted(server: HTTPServer) -> None:
    server.expect_request("/j", method="POST").respond_with_data("", status=204)
    server.expect_request("/f", method="PUT").respond_with_data("", status=204)
    client = HTTPClient("svc")
    with capture_events(REQUEST_LOGGER) as events:
        client.post(server.url_for("/j"), json={"password": "pw", "name": "Ada"}, timeout=5)
        client.put(server.url_for("/f"), data={"user": "ada", "secret": "s", "tag": ["a", "b"]},
                   timeout=5)
    assert events[0]["request_repr"]["method"] == "POST"
    assert events[0]["request_repr"]["body"] == {"password": REDACTED, "name": "Ada"}
    assert events[1]["request_repr"]["method"] == "PUT"
    assert events[1]["request_repr"]["body"] == {"user": "ada", "secret": REDACTED,
                                                 "tag": ["a", "b"]}
    assert events[1]["response_repr"] == {
        "status_code": 204, "headers": events[1]["response_repr"]["headers"], "body": None,
    }


def test_multipart_files_recorded_by_name_and_size(server: HTTPServer) -> None:
    received: dict[str, Any] = {}

    def handler(request: Request) -> Response:
        received["file"] = request.files["scan"].read()
        received["form"] = dict(request.form)
        return Response("stored", content_type="text/plain")

    server.expect_request("/upload", method="POST").respond_with_handler(handler)
    payload = b"%PDF-1.7 " + bytes(range(256)) * 40
    with capture_events(REQUEST_LOGGER) as events:
        HTTPClient("docs").post(
            server.url_for("/upload"),
            data={"patient": "p-1", "api_token": "t"},
            files={"scan": ("scan.pdf", payload, "application/pdf")},
            timeout=5,
        )
    # Auditing described the body without consuming or altering it.
    assert received == {"file": payload, "form": {"patient": "p-1", "api_token": "t"}}
    body = events[0]["request_repr"]["body"]
    assert body == {
        "content_type": "multipart/form-data",
        "fields": {"patient": "p-1", "api_token": REDACTED},
        "files": [{"field": "scan", "name": "scan.pdf", "size": len(payload),
                   "content_type": "application/pdf"}],
    }
    assert events[0]["response_repr"]["body"] == {"content_type": "text/plain", "size": 6}


@pytest.mark.parametrize("record_text", [False, True])
def test_text_binary_and_capped_responses(server: HTTPServer, record_text: bool) -> None:
    server.expect_request("/text").respond_with_data("plain words", content_type="text/plain")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 12
    server.expect_request("/bin").respond_with_data(png, content_type="image/png")
    server.expect_request("/big").respond_with_data("x" * 100, content_type="text/plain")
    server.expect_request("/bigjson").respond_with_json({"a": "y" * 100})
    settings = OutboundSettings(max_body_bytes=32, record_text=record_text)
    client = HTTPClient("svc", settings=settings)
    with capture_events(REQUEST_LOGGER) as events:
        for path in ("/text", "/bin", "/big", "/bigjson"):
            client.get(server.url_for(path), timeout=5)
    bodies = [e["response_repr"]["body"] for e in events]
    if record_text:
        assert bodies[0] == "plain words"
        assert bodies[2] == {"content_type": "text/plain", "size": 100, "truncated": True,
                             "text": "x" * 32}
    else:
        # Text is kept by type and size only: secrets in it have no key to match.
        assert bodies[0] == {"content_type": "text/plain", "size": 11}
        assert bodies[2] == {"content_type": "text/plain", "size": 100}
    assert bodies[1] == {"content_type": "image/png", "size": len(png)}
    assert bodies[3]["truncated"] is True
    assert bodies[3]["content_type"] == "application/json"


@pytest.mark.parametrize("record_text", [False, True])
def test_text_request_bodies_follow_record_text(server: HTTPServer, record_text: bool) -> None:
    envelope = "<soap:Envelope><Password>hunter2</Password></soap:Envelope>"
    server.expect_request("/soap", method="POST").respond_with_data("ok")
    client = HTTPClient("svc", settings=OutboundSettings(record_text=record_text))
    with capture_events(REQUEST_LOGGER) as events:
        client.post(server.url_for("/soap"), data=envelope.encode(),
                    headers={"Content-Type": "application/soap+xml"}, timeout=5)
    body = events[0]["request_repr"]["body"]
    if record_text:
        assert body == envelope
    else:
        assert body == {"content_type": "application/soap+xml", "size": len(envelope)}
        assert "hunter2" not in json.dumps(events[0])


def test_errors_statuses_and_non_json_are_not_exceptions(server: HTTPServer) -> None:
    server.expect_request("/missing").respond_with_data("no such thing", status=404)
    server.expect_request("/boom").respond_with_data("<h1>oops</h1>", status=500,
                                                     content_type="text/html")
    server.expect_request("/bad-json").respond_with_data("{not json",
                                                         content_type="application/json")
    client = HTTPClient("svc")
    with capture_events(REQUEST_LOGGER) as events:
        statuses = [client.get(server.url_for(p), timeout=5).status_code
                    for p in ("/missing", "/boom", "/bad-json")]
    assert statuses == [404, 500, 200]
    assert [e["response_repr"]["status_code"] for e in events] == [404, 500, 200]
    assert [e["error_message"] for e in events] == [None, None, None]
    assert events[1]["response_repr"]["body"] == {"content_type": "text/html", "size": 13}
    assert events[2]["response_repr"]["body"] == {
        "content_type": "application/json", "size": 9, "invalid_json": True,
    }


def test_one_event_per_redirect_hop_each_with_its_own_span(server: HTTPServer) -> None:
    server.expect_request("/old").respond_with_data(
        "", status=302, headers={"Location": server.url_for("/new")}
    )
    server.expect_request("/new").respond_with_json({"here": True})
    with capture_events(REQUEST_LOGGER) as events, bind(request_id="rid-9", traceparent=PARENT):
        response = HTTPClient("svc").get(server.url_for("/old"), timeout=5)
    assert response.json() == {"here": True}
    assert [e["response_repr"]["status_code"] for e in events] == [302, 200]
    assert [e["request_repr"]["endpoint"] for e in events] == [
        server.url_for("/old"), server.url_for("/new"),
    ]
    sent = [req.headers for req, _ in server.log]
    assert [h["X-Request-ID"] for h in sent] == ["rid-9", "rid-9"]
    spans = [h["traceparent"].split("-")[2] for h in sent]
    assert all(h["traceparent"].split("-")[1] == TRACE_ID for h in sent)
    assert len(set(spans)) == 2
    assert "00f067aa0ba902b7" not in spans
    assert [e["request_id"] for e in events] == ["rid-9", "rid-9"]


def test_redirect_with_a_broken_body_behaves_as_plain_requests(server: HTTPServer) -> None:
    # requests reads a redirect's body leniently; auditing must not read it strictly.
    server.expect_request("/gz").respond_with_data(
        b"not gzip at all", status=302,
        headers={"Location": server.url_for("/ok"), "Content-Encoding": "gzip"},
    )
    server.expect_request("/ok").respond_with_json({"ok": True})
    assert requests.Session().get(server.url_for("/gz"), timeout=5).status_code == 200
    with capture_events(REQUEST_LOGGER) as events:
        response = HTTPClient("svc").get(server.url_for("/gz"), timeout=5)
    assert response.json() == {"ok": True}
    assert [e["response_repr"]["status_code"] for e in events] == [302, 200]
    assert events[0]["response_repr"]["body"]["read"] is False


def test_propagation_never_overwrites_caller_headers(server: HTTPServer) -> None:
    server.expect_request("/p").respond_with_data("ok")
    client = HTTPClient("svc")
    mine = f"00-{'1' * 32}-{'2' * 16}-00"
    with bind(request_id="rid-1", traceparent=PARENT):
        client.get(server.url_for("/p"), headers={"x-request-id": "theirs", "Traceparent": mine},
                   timeout=5)
        client.get(server.url_for("/p"), timeout=5)
        client.get(server.url_for("/p"), timeout=5)
    headers = [req.headers for req, _ in server.log]
    assert headers[0]["X-Request-ID"] == "theirs"
    assert headers[0]["traceparent"] == mine
    assert headers[1]["X-Request-ID"] == headers[2]["X-Request-ID"] == "rid-1"
    assert headers[1]["traceparent"] != headers[2]["traceparent"]


def test_no_context_sends_no_correlation_headers(server: HTTPServer) -> None:
    server.expect_request("/p").respond_with_data("ok")
    HTTPClient("svc").get(server.url_for("/p"), timeout=5)
    [(request, _)] = server.log
    assert "X-Request-ID" not in request.headers
    assert "traceparent" not in request.headers


@pytest.mark.parametrize("invalid", [
    f"00-{TRACE_ID}-{'0' * 16}-01", f"ff-{TRACE_ID}-00f067aa0ba902b7-01", PARENT.upper(),
])
def test_invalid_context_traceparent_is_not_propagated(server: HTTPServer, invalid: str) -> None:
    server.expect_request("/p").respond_with_data("ok")
    with bind(request_id="rid-2", traceparent=invalid):
        HTTPClient("svc").get(server.url_for("/p"), timeout=5)
    [(request, _)] = server.log
    assert request.headers["X-Request-ID"] == "rid-2"
    assert "traceparent" not in request.headers


def test_caller_prepared_request_is_left_untouched(server: HTTPServer) -> None:
    server.expect_request("/p").respond_with_data("ok")
    client = HTTPClient("svc")
    prepared = client.prepare_request(requests.Request("GET", server.url_for("/p")))
    with bind(request_id="rid-2"):
        client.send(prepared, timeout=5)
    assert "X-Request-ID" not in prepared.headers
    assert server.log[0][0].headers["X-Request-ID"] == "rid-2"


def test_streamed_response_is_not_consumed_by_auditing(server: HTTPServer) -> None:
    payload = b"chunk" * 1000
    server.expect_request("/stream").respond_with_data(payload,
                                                       content_type="application/octet-stream")
    with capture_events(REQUEST_LOGGER) as events:
        response = HTTPClient("svc").get(server.url_for("/stream"), stream=True, timeout=5)
        [event] = events
        assert response.raw.tell() == 0
        assert response.content == payload
    assert event["response_repr"]["body"] == {
        "content_type": "application/octet-stream", "size": len(payload), "streaming": True,
    }


def test_streamed_upload_is_not_read_by_auditing(server: HTTPServer) -> None:
    received: list[bytes] = []

    def handler(request: Request) -> Response:
        received.append(request.get_data())
        return Response("ok")

    server.expect_request("/up", method="POST").respond_with_handler(handler)

    def chunks() -> Iterator[bytes]:
        yield b"part-1;"
        yield b"part-2"

    with capture_events(REQUEST_LOGGER) as events:
        HTTPClient("svc").post(server.url_for("/up"), data=chunks(),
                               headers={"Content-Type": "text/plain"}, timeout=5)
    assert received == [b"part-1;part-2"]
    assert events[0]["request_repr"]["body"] == {
        "content_type": "text/plain", "size": None, "streaming": True,
    }


def test_timeout_is_logged_and_reraised(server: HTTPServer, api_log: Path) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(10)
        return Response("late")

    server.expect_request("/slow").respond_with_handler(slow)
    try:
        with capture_events(REQUEST_LOGGER) as events, pytest.raises(requests.ReadTimeout):
            HTTPClient("svc").get(server.url_for("/slow"), timeout=0.2)
    finally:
        release.set()
    [event] = events
    assert event["error_message"].startswith("requests.exceptions.ReadTimeout: ")
    assert event["response_repr"] is None
    assert read_lines(api_log)[0]["error_message"] == event["error_message"]


def test_connection_refused_is_logged_scrubbed_and_reraised(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/x?access_token=tok-XYZ"
    with capture_events(REQUEST_LOGGER) as events, pytest.raises(requests.ConnectionError):
        HTTPClient("down").get(url, timeout=5)
    [event] = events
    assert event["error_message"].startswith("requests.exceptions.ConnectionError: ")
    assert "tok-XYZ" not in event["error_message"]
    assert event["request_repr"]["endpoint"].endswith(f"/x?access_token={REDACTED}")
    assert event["service_name"] == "down"


def test_dns_failure_is_logged_and_reraised() -> None:
    with capture_events(REQUEST_LOGGER) as events, pytest.raises(requests.ConnectionError):
        HTTPClient("svc").get("http://no-such-host.invalid/", timeout=5)
    assert events[0]["error_message"].startswith("requests.exceptions.ConnectionError: ")


def test_tls_error_is_logged_and_reraised(server: HTTPServer) -> None:
    # An https:// request to the plain-HTTP server fails the TLS handshake.
    url = server.url_for("/tls").replace("http://", "https://")
    with capture_events(REQUEST_LOGGER) as events, pytest.raises(requests.exceptions.SSLError):
        HTTPClient("svc").get(url, timeout=5)
    assert events[0]["error_message"].startswith("requests.exceptions.SSLError: ")


def test_raise_errors_false_is_deprecated_and_returns_none(closed_port: int) -> None:
    with pytest.warns(DeprecationWarning, match="raise_errors"):
        client = HTTPClient("legacy", raise_errors=False)
    with capture_events(REQUEST_LOGGER) as events:
        result = client.get(f"http://127.0.0.1:{closed_port}/", timeout=5)
    assert result is None
    assert events[0]["error_message"].startswith("requests.exceptions.ConnectionError")


def test_disabled_emits_nothing_but_still_propagates(server: HTTPServer) -> None:
    server.expect_request("/p").respond_with_data("ok")
    client = HTTPClient("svc", settings=OutboundSettings(enabled=False))
    with capture_events(REQUEST_LOGGER) as events, bind(request_id="rid-3"):
        assert client.get(server.url_for("/p"), timeout=5).text == "ok"
    assert events == []
    assert server.log[0][0].headers["X-Request-ID"] == "rid-3"


def test_logger_below_api_skips_building_events(
    server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.expect_request("/p").respond_with_data("ok")
    built: list[object] = []
    monkeypatch.setattr(protocols, "build_event", lambda *a, **k: built.append(a) or {})
    logger = logging.getLogger(REQUEST_LOGGER)
    saved = logger.level
    try:
        client = HTTPClient("svc")
        assert client.get(server.url_for("/p"), timeout=5).text == "ok"
        assert len(built) == 1  # the logger listens: the event is built
        logger.setLevel(logging.ERROR)
        assert client.get(server.url_for("/p"), timeout=5).text == "ok"
    finally:
        logger.setLevel(saved)
    assert len(built) == 1  # it does not: nothing is built


def test_concurrent_calls_share_no_state(server: HTTPServer) -> None:
    server.expect_request("/c").respond_with_data("ok")
    client = HTTPClient("svc")
    errors: list[BaseException] = []

    def call(n: int) -> None:
        try:
            with bind(request_id=f"rid-{n}", extra={"n": n}):
                for _ in range(5):
                    client.get(server.url_for("/c"), params={"n": n}, timeout=5)
        except BaseException as exc:
            errors.append(exc)

    with capture_events(REQUEST_LOGGER) as events:
        threads = [threading.Thread(target=call, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert len(events) == 30
    for event in events:
        n = event["extra"]["n"]
        assert event["request_id"] == f"rid-{n}"
        assert event["request_repr"]["headers"]["X-Request-ID"] == f"rid-{n}"
        assert event["request_repr"]["endpoint"].endswith(f"?n={n}")
    assert sorted(r.headers["X-Request-ID"] for r, _ in server.log) == sorted(
        f"rid-{n}" for n in range(6) for _ in range(5)
    )


def test_auditing_failure_never_reaches_the_caller(
    server: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenRedactor(Redactor):
        def redact_headers(self, headers: Any) -> dict[str, Any]:
            raise RuntimeError("redactor bug")

    server.expect_request("/p").respond_with_data("fine")
    client = HTTPClient("svc", settings=OutboundSettings(redactor=BrokenRedactor()))
    with capture_events(REQUEST_LOGGER) as events, caplog.at_level(logging.ERROR, "activity_audit"):
        assert client.get(server.url_for("/p"), timeout=5).text == "fine"
    assert events == []
    assert any("could not record outbound HTTP call" in r.message for r in caplog.records)


def test_adapter_mounts_on_any_session(server: HTTPServer) -> None:
    server.expect_request("/p").respond_with_data("ok")
    session = requests.Session()
    session.mount("http://", AuditHTTPAdapter("plain-session"))
    with capture_events(REQUEST_LOGGER) as events:
        session.delete(server.url_for("/p"), timeout=5)
    assert events[0]["service_name"] == "plain-session"
    assert events[0]["request_repr"]["method"] == "DELETE"


def test_redact_url() -> None:
    r = Redactor()
    assert redact_url("https://u:pw@h.example/p?a=1&password=x&b=2#access_token=t", r) == (
        f"https://u:{REDACTED}@h.example/p?a=1&password={REDACTED}&b=2"
        f"#access_token={REDACTED}"
    )
    assert redact_url("http://h/p", r) == "http://h/p"


def test_client_survives_pickling(server: HTTPServer) -> None:
    server.expect_request("/p").respond_with_data("ok")
    client = pickle.loads(pickle.dumps(HTTPClient("pickled", settings=OutboundSettings())))
    with capture_events(REQUEST_LOGGER) as events:
        assert client.get(server.url_for("/p"), timeout=5).text == "ok"
    assert client.service_name == "pickled"
    assert events[0]["service_name"] == "pickled"
