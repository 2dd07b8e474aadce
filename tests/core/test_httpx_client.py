"""httpx sync and async audit transports against a real HTTP server on 127.0.0.1.

Every case runs twice: through ``httpx.Client(transport=AuditTransport(...))``
and through ``httpx.AsyncClient(transport=AsyncAuditTransport(...))``.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from activity_audit.context import bind
from activity_audit.httpx_client import AsyncAuditTransport, AuditTransport
from activity_audit.protocols import OutboundSettings
from activity_audit.schema import BASE_KEYS, REDACTED, REQUEST_KEYS, REQUEST_LOGGER
from activity_audit.testing import capture_events
from tests.helpers import read_lines

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def send(
    mode: str, method: str, url: str, *, settings: OutboundSettings | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One request through a fresh client of ``mode``; the body is read, as by default."""
    kwargs.setdefault("timeout", 5)
    if mode == "sync":
        with httpx.Client(transport=AuditTransport("svc", settings=settings)) as client:
            return client.request(method, url, **kwargs)
    async with httpx.AsyncClient(
        transport=AsyncAuditTransport("svc", settings=settings)
    ) as aclient:
        return await aclient.request(method, url, **kwargs)


async def test_json_exchange_written_by_real_handler(
    mode: str, server: HTTPServer, api_log: Path
) -> None:
    server.expect_request("/j", method="POST").respond_with_json({"ok": True, "secret": "s"})
    with capture_events(REQUEST_LOGGER) as events:
        response = await send(
            mode, "POST", server.url_for("/j"), params={"token": "t-1", "page": "2"},
            json={"password": "pw", "name": "Ada"}, headers={"Authorization": "Basic x"},
        )
    assert response.json() == {"ok": True, "secret": "s"}
    [event] = events
    [line] = read_lines(api_log)
    assert set(event) == {*BASE_KEYS, *REQUEST_KEYS}
    for record in (event, line):
        assert record["protocol"] == "http"
        assert record["request_type"] == "external"
        assert record["service_name"] == "svc"
        assert record["request_repr"]["method"] == "POST"
        assert record["request_repr"]["endpoint"] == server.url_for(
            f"/j?token={REDACTED}&page=2"
        )
        assert record["request_repr"]["headers"]["authorization"] == REDACTED
        assert record["request_repr"]["body"] == {"password": REDACTED, "name": "Ada"}
        assert record["response_repr"]["status_code"] == 200
        assert record["response_repr"]["body"] == {"ok": True, "secret": REDACTED}
        assert record["error_message"] is None
        assert record["execution_time"] > 0
    assert "t-1" not in api_log.read_text("utf-8")


async def test_text_binary_statuses(mode: str, server: HTTPServer) -> None:
    server.expect_request("/t").respond_with_data("hello", content_type="text/plain")
    server.expect_request("/b").respond_with_data(b"\x00\x01\x02", content_type="image/png")
    server.expect_request("/404").respond_with_data("gone", status=404)
    server.expect_request("/500").respond_with_data("{bad", status=500,
                                                    content_type="application/json")
    with capture_events(REQUEST_LOGGER) as events:
        for p in ("/t", "/b", "/404", "/500"):
            await send(mode, "GET", server.url_for(p))
    assert [e["response_repr"]["status_code"] for e in events] == [200, 200, 404, 500]
    assert [e["error_message"] for e in events] == [None] * 4
    # Text is kept by type and size only by default: secrets in it have no key to match.
    assert events[0]["response_repr"]["body"] == {"content_type": "text/plain", "size": 5}
    assert events[1]["response_repr"]["body"] == {"content_type": "image/png", "size": 3}
    assert events[3]["response_repr"]["body"] == {
        "content_type": "application/json", "size": 4, "invalid_json": True,
    }


async def test_gzip_response_is_decoded(mode: str, server: HTTPServer) -> None:
    body = gzip.compress(json.dumps({"n": 1, "api_key": "k"}).encode())
    server.expect_request("/gz").respond_with_data(
        body, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    with capture_events(REQUEST_LOGGER) as events:
        response = await send(mode, "GET", server.url_for("/gz"))
    assert response.json() == {"n": 1, "api_key": "k"}
    assert events[0]["response_repr"]["body"] == {"n": 1, "api_key": REDACTED}


async def test_text_recorded_with_record_text(mode: str, server: HTTPServer) -> None:
    server.expect_request("/t").respond_with_data("hello", content_type="text/plain")
    xml = "<a><password>p</password></a>"
    server.expect_request("/x", method="POST").respond_with_data(
        gzip.compress(b"<ok/>"), content_type="application/xml",
        headers={"Content-Encoding": "gzip"},
    )
    settings = OutboundSettings(record_text=True)
    with capture_events(REQUEST_LOGGER) as events:
        await send(mode, "GET", server.url_for("/t"), settings=settings)
        await send(mode, "POST", server.url_for("/x"), settings=settings, content=xml,
                   headers={"Content-Type": "application/xml"})
        await send(mode, "POST", server.url_for("/x"), content=xml,
                   headers={"Content-Type": "application/xml"})
    assert events[0]["response_repr"]["body"] == "hello"
    assert events[1]["request_repr"]["body"] == xml
    assert events[1]["response_repr"]["body"] == "<ok/>"
    assert events[2]["request_repr"]["body"] == {"content_type": "application/xml",
                                                 "size": len(xml)}
    assert events[2]["response_repr"]["body"] == {"content_type": "application/xml", "size": 5}


@pytest.mark.parametrize("record_text", [False, True])
async def test_capped_response(mode: str, server: HTTPServer, record_text: bool) -> None:
    server.expect_request("/big").respond_with_data("z" * 50, content_type="text/plain")
    with capture_events(REQUEST_LOGGER) as events:
        response = await send(
            mode, "GET", server.url_for("/big"),
            settings=OutboundSettings(max_body_bytes=10, record_text=record_text),
        )
    assert response.text == "z" * 50
    expected: dict[str, Any] = {"content_type": "text/plain", "size": 50}
    if record_text:
        expected.update(truncated=True, text="z" * 10)
    assert events[0]["response_repr"]["body"] == expected


async def test_multipart_upload(mode: str, server: HTTPServer) -> None:
    received: dict[str, Any] = {}

    def handler(request: Request) -> Response:
        received["file"] = request.files["scan"].read()
        received["form"] = dict(request.form)
        return Response("ok")

    server.expect_request("/up", method="POST").respond_with_handler(handler)
    payload = bytes(range(256)) * 8
    with capture_events(REQUEST_LOGGER) as events:
        await send(mode, "POST", server.url_for("/up"),
                   data={"patient": "p1", "password": "pw"},
                   files={"scan": ("scan.bin", payload, "application/octet-stream")})
    assert received == {"file": payload, "form": {"patient": "p1", "password": "pw"}}
    assert events[0]["request_repr"]["body"] == {
        "content_type": "multipart/form-data",
        "fields": {"patient": "p1", "password": REDACTED},
        "files": [{"field": "scan", "name": "scan.bin", "size": len(payload),
                   "content_type": "application/octet-stream"}],
    }


async def test_redirect_hops_and_propagation(mode: str, server: HTTPServer) -> None:
    server.expect_request("/old").respond_with_data(
        "", status=307, headers={"Location": server.url_for("/new")}
    )
    server.expect_request("/new").respond_with_data("arrived")
    with capture_events(REQUEST_LOGGER) as events, bind(request_id="rid-h", traceparent=PARENT):
        response = await send(mode, "GET", server.url_for("/old"), follow_redirects=True)
    assert response.text == "arrived"
    assert [e["response_repr"]["status_code"] for e in events] == [307, 200]
    assert [e["request_id"] for e in events] == ["rid-h", "rid-h"]
    sent = [req.headers for req, _ in server.log]
    assert [h["X-Request-ID"] for h in sent] == ["rid-h", "rid-h"]
    parents = [h["traceparent"].split("-") for h in sent]
    assert {p[1] for p in parents} == {TRACE_ID}
    assert len({p[2] for p in parents}) == 2


async def test_caller_header_kept(mode: str, server: HTTPServer) -> None:
    server.expect_request("/p").respond_with_data("ok")
    with bind(request_id="ours"):
        await send(mode, "GET", server.url_for("/p"), headers={"X-Request-Id": "theirs"})
    assert server.log[0][0].headers["X-Request-ID"] == "theirs"


async def test_timeout_logged_and_reraised(mode: str, server: HTTPServer) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(10)
        return Response("late")

    server.expect_request("/slow").respond_with_handler(slow)
    try:
        with capture_events(REQUEST_LOGGER) as events, pytest.raises(httpx.ReadTimeout):
            await send(mode, "GET", server.url_for("/slow"), timeout=0.2)
    finally:
        release.set()
    [event] = events
    assert event["error_message"].startswith("httpx.ReadTimeout: ")
    assert event["response_repr"] is None


async def test_connection_refused_logged_and_reraised(mode: str, closed_port: int) -> None:
    port = closed_port
    with capture_events(REQUEST_LOGGER) as events, pytest.raises(httpx.ConnectError):
        await send(mode, "GET", f"http://127.0.0.1:{port}/?secret=zz")
    [event] = events
    assert event["error_message"].startswith("httpx.ConnectError: ")
    assert event["request_repr"]["endpoint"].endswith(f"/?secret={REDACTED}")


async def test_streamed_response_not_consumed(server: HTTPServer) -> None:
    # Larger than one transport read (64 KiB), so stopping early leaves bytes unread.
    payload = b"0123456789" * 30_000
    server.expect_request("/s").respond_with_data(payload, content_type="text/plain")
    with capture_events(REQUEST_LOGGER) as events:
        async with (
            httpx.AsyncClient(transport=AsyncAuditTransport("svc")) as client,
            client.stream("GET", server.url_for("/s")) as response,
        ):
            assert events == []
            first = await response.aiter_raw(100).__anext__()
            assert len(first) <= 100
        for record_text in (False, True):
            transport = AuditTransport("svc", settings=OutboundSettings(record_text=record_text))
            with (
                httpx.Client(transport=transport) as sync_client,
                sync_client.stream("GET", server.url_for("/s")) as sync_response,
            ):
                assert sync_response.read() == payload
    partial, full, full_text = events
    assert partial["response_repr"]["body"]["streaming"] is True
    assert partial["response_repr"]["body"]["size"] == len(payload)
    assert partial["response_repr"]["body"]["bytes_read"] < len(payload)
    assert full["response_repr"]["body"] == {"content_type": "text/plain", "size": len(payload)}
    assert full_text["response_repr"]["body"] == {
        "content_type": "text/plain", "size": len(payload), "truncated": True,
        "text": payload[: 64 * 1024].decode(),
    }


async def test_unclosed_response_emits_when_collected(mode: str, server: HTTPServer) -> None:
    payload = b"0123456789" * 30_000
    server.expect_request("/u").respond_with_data(payload, content_type="text/plain")
    with capture_events(REQUEST_LOGGER) as events, bind(request_id="rid-u"):
        if mode == "sync":
            client = httpx.Client(transport=AuditTransport("svc"))
            response = client.send(client.build_request("GET", server.url_for("/u")), stream=True)
            next(response.iter_raw(100))
        else:
            aclient = httpx.AsyncClient(transport=AsyncAuditTransport("svc"))
            response = await aclient.send(aclient.build_request("GET", server.url_for("/u")),
                                          stream=True)
            await response.aiter_raw(100).__anext__()
        assert response.status_code == 200
        assert events == []
        # Dropped without close(): the exchange is still recorded, once.
        del response
        # The event loop closes the abandoned async reading generators first.
        for _ in range(100):
            gc.collect()
            if events:
                break
            await asyncio.sleep(0.01)
        assert len(events) == 1
        gc.collect()
    assert len(events) == 1
    (event,) = events
    assert event["request_id"] == "rid-u"
    assert event["response_repr"]["status_code"] == 200
    body = event["response_repr"]["body"]
    assert body["streaming"] is True
    assert body["unclosed"] is True
    assert 0 < body["bytes_read"] < len(payload)
    if mode == "sync":
        client.close()
    else:
        await aclient.aclose()


EXIT_SCRIPT = textwrap.dedent("""
    import logging.config, sys, httpx
    from activity_audit import get_api_file_handler
    from activity_audit.httpx_client import AuditTransport
    logging.config.dictConfig({
        "version": 1, "disable_existing_loggers": False,
        "handlers": {"api": get_api_file_handler(log_dir=sys.argv[2])},
        "loggers": {"audit.request": {"handlers": ["api"], "level": "API"}},
    })
    client = httpx.Client(transport=AuditTransport("svc"))
    response = client.send(client.build_request("GET", sys.argv[1]), stream=True)
    next(response.iter_raw(100))
    print(response.status_code)
    # Exits holding the response, never closed.
""")


async def test_unclosed_response_emits_at_exit(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/x").respond_with_data(b"0123456789" * 30_000)
    script = tmp_path / "unclosed.py"
    script.write_text(EXIT_SCRIPT)
    done = subprocess.run([sys.executable, str(script), server.url_for("/x"), str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "200", "")
    (line,) = read_lines(tmp_path / "api.log")
    assert line["response_repr"]["body"]["unclosed"] is True
    assert line["request_type"] == "external"


async def test_disabled_emits_nothing(mode: str, server: HTTPServer) -> None:
    server.expect_request("/p").respond_with_data("ok")
    with capture_events(REQUEST_LOGGER) as events, bind(request_id="rid-d"):
        response = await send(mode, "GET", server.url_for("/p"),
                              settings=OutboundSettings(enabled=False))
    assert response.text == "ok"
    assert events == []
    assert server.log[0][0].headers["X-Request-ID"] == "rid-d"
