"""Audited httpx transports, sync and async (the ``httpx`` extra).

Wrap the transport a client sends through::

    client = httpx.Client(transport=AuditTransport("billing"))
    client = httpx.AsyncClient(transport=AsyncAuditTransport("billing"))

Each HTTP exchange -- so each redirect hop -- emits one event, like
:class:`activity_audit.protocols.HTTPClient` (both build them with
:mod:`activity_audit.outbound`). The request id and W3C
``traceparent`` are propagated; errors are recorded and re-raised unchanged.

A transport cannot know whether the caller streams, so the response body is
observed as the caller reads it, never read by auditing: the event is emitted
when the response is closed, with the body when it was read to the end, else
as ``streaming``. A response that is never closed emits its event when it is
garbage-collected (or at interpreter exit), its body marked ``unclosed``.
"""

from __future__ import annotations

import logging
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import httpx

from activity_audit.bodies import describe_multipart, media_type
from activity_audit.context import context_fields
from activity_audit.outbound import (
    PROTOCOL_HTTP,
    OutboundSettings,
    add_missing_headers,
    build_event,
    current_settings,
    describe_request_body,
    describe_response_body,
    emit_event,
    error_message,
    headers_repr,
    is_auditing,
    propagation_headers,
    redact_url_parts,
    streaming_body,
)
from activity_audit.schema import DIAGNOSTIC_LOGGER

__all__ = ["AsyncAuditTransport", "AuditTransport"]

_diagnostic: Final = logging.getLogger(DIAGNOSTIC_LOGGER)


def _multipart_repr(request: httpx.Request, settings: OutboundSettings) -> Any:
    """Fields and file metadata from httpx's multipart stream, without reading files.

    httpx keeps the parts on the stream (``fields``: objects with ``name`` and
    ``value``, or ``name``, ``filename``, ``file`` and ``headers``); anything
    else falls back to type and size.
    """
    parts = getattr(request.stream, "fields", None)
    if not isinstance(parts, list):
        return None
    fields: list[tuple[str, Any]] = []
    files: list[tuple[str, str | None, int | None, str | None]] = []
    for part in parts:
        name = str(getattr(part, "name", ""))
        if hasattr(part, "filename"):
            content = getattr(part, "file", None)
            size: int | None
            if isinstance(content, (bytes, str)):
                size = len(content.encode("utf-8") if isinstance(content, str) else content)
            else:
                total = part.get_length()
                size = None if total is None else total - len(part.render_headers())
            headers = getattr(part, "headers", {}) or {}
            ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
            files.append((name, part.filename, size, ctype))
        elif hasattr(part, "value"):
            value = part.value
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            text = "" if text is None else str(text)
            if len(text) > settings.max_body_bytes:
                fields.append((name, {"size": len(text), "truncated": True}))
            else:
                fields.append((name, text))
        else:
            return None
    return describe_multipart(fields, files, settings.redactor)


def _request_body(request: httpx.Request, settings: OutboundSettings) -> Any:
    ctype = request.headers.get("Content-Type")
    try:
        content = request.content
    except httpx.RequestNotRead:
        content = None
    if content is not None:
        return describe_request_body(content, ctype, settings) if content else None
    if media_type(ctype) == "multipart/form-data":
        described = _multipart_repr(request, settings)
        if described is not None:
            return described
    # A generator or file streamed upload: auditing must not read it.
    return streaming_body(request.headers)


def _decode(data: bytes, encoding: str, limit: int) -> bytes | None:
    """Undo a gzip/deflate ``Content-Encoding`` (at most ``limit + 1`` bytes out)."""
    if encoding in {"gzip", "x-gzip"}:
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        # RFC 9110 deflate is zlib-wrapped, but servers also send raw deflate.
        wbits = zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS
    else:
        return None
    try:
        return zlib.decompressobj(wbits).decompress(data, limit + 1)
    except zlib.error:
        return None


class _Exchange:
    """One audited exchange: what was sent, and the response body as it is read."""

    __slots__ = (
        "captured",
        "captured_size",
        "complete",
        "ctx",
        "done",
        "ended",
        "error",
        "request_repr",
        "response_headers",
        "secrets",
        "service_name",
        "settings",
        "size",
        "started",
        "status_code",
        "unclosed",
    )

    def __init__(
        self,
        service_name: str,
        settings: OutboundSettings,
        request: httpx.Request,
    ) -> None:
        redactor = settings.redactor
        url, secrets = redact_url_parts(str(request.url), redactor)
        self.service_name = service_name
        self.settings = settings
        self.ctx = context_fields()
        self.secrets = secrets
        self.request_repr: dict[str, Any] = {
            "method": request.method,
            "endpoint": url,
            "headers": headers_repr(request.headers, redactor),
            "body": _request_body(request, settings),
        }
        # What the event needs of the response, not the response: a finalizer holds
        # the exchange, and must not keep the response (or its stream) alive.
        self.status_code: int | None = None
        self.response_headers: httpx.Headers | None = None
        self.unclosed = False
        self.captured: list[bytes] = []
        self.captured_size = 0
        self.size = 0
        self.complete = False
        self.error: BaseException | None = None
        self.done = False
        self.started = time.perf_counter()
        self.ended: float | None = None

    def feed(self, chunk: bytes) -> None:
        # Keep one byte over the cap: enough to know the body was over it.
        room = self.settings.max_body_bytes + 1 - self.captured_size
        if room > 0:
            kept = chunk[:room]
            self.captured.append(kept)
            self.captured_size += len(kept)
        self.size += len(chunk)

    def end(self, error: BaseException | None = None) -> None:
        if self.ended is None:
            self.ended = time.perf_counter()
        if error is not None:
            self.error = error
        else:
            self.complete = True

    def received(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.response_headers = response.headers

    def _response_body(self, headers: httpx.Headers) -> Any:
        ctype = headers.get("Content-Type")
        if not self.complete:
            body = {**streaming_body(headers), "bytes_read": self.size}
            if self.unclosed:
                body["unclosed"] = True
            return body
        data = b"".join(self.captured)
        max_bytes = self.settings.max_body_bytes
        encoding = headers.get("Content-Encoding", "").strip().lower()
        if encoding and encoding != "identity":
            decoded = _decode(data, encoding, max_bytes) if self.size <= max_bytes else None
            if decoded is None or len(decoded) > max_bytes:
                return {"content_type": media_type(ctype) or None, "size": self.size,
                        "content_encoding": encoding, "truncated": decoded is not None}
            return describe_response_body(decoded, ctype, self.settings)
        return describe_response_body(data, ctype, self.settings, size=self.size)

    def finish(self, error: BaseException | None = None) -> None:
        """Emit the event (once). Never raises."""
        if self.done:
            return
        self.done = True
        try:
            if error is not None:
                self.end(error)
            ended = self.ended if self.ended is not None else time.perf_counter()
            response_repr: dict[str, Any] | None = None
            headers = self.response_headers
            if headers is not None:
                response_repr = {
                    "status_code": self.status_code,
                    "headers": headers_repr(headers, self.settings.redactor),
                    "body": self._response_body(headers) if self.error is None else None,
                }
            message = (
                error_message(self.error, self.secrets) if self.error is not None else None
            )
            emit_event(build_event(self.service_name, PROTOCOL_HTTP, self.ctx, self.request_repr,
                               response_repr, message, ended - self.started))
        except Exception:
            _diagnostic.exception("could not record outbound HTTP call to %s", self.service_name)

    def abandon(self) -> None:
        """The response was garbage-collected (or the interpreter exits) unclosed."""
        if not self.done:
            self.unclosed = True
            self.finish()


def _watch(stream: Any, exchange: _Exchange) -> Any:
    """``stream``, whose exchange is finished if it is dropped without being closed."""
    weakref.finalize(stream, exchange.abandon)
    return stream


def _begin(
    service_name: str, fixed: OutboundSettings | None, request: httpx.Request
) -> tuple[httpx.Request, _Exchange | None]:
    """The request to send (with propagation headers) and its exchange, if audited."""
    try:
        settings = fixed or current_settings()
        headers = httpx.Headers(request.headers)
        add_missing_headers(headers, propagation_headers(settings.request_id_header))
        # A new Request, so each redirect hop (rebuilt by the client from its own
        # request) gets its own span id and the caller's object is untouched.
        outgoing = httpx.Request(
            request.method, request.url, headers=headers, stream=request.stream,
            extensions=request.extensions,
        )
        exchange = _Exchange(service_name, settings, request) if is_auditing(settings) else None
    except Exception:
        _diagnostic.exception("outbound HTTP auditing failed before the call")
        return request, None
    return outgoing, exchange


class _AuditedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, exchange: _Exchange) -> None:
        self._inner = inner
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._inner:
                self._exchange.feed(chunk)
                yield chunk
        except Exception as exc:
            self._exchange.end(exc)
            raise
        self._exchange.end()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._exchange.finish()


class _AsyncAuditedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, exchange: _Exchange) -> None:
        self._inner = inner
        self._exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                self._exchange.feed(chunk)
                yield chunk
        except Exception as exc:
            self._exchange.end(exc)
            raise
        self._exchange.end()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._exchange.finish()


def _rewrap(response: httpx.Response, stream: Any) -> httpx.Response:
    return httpx.Response(
        response.status_code, headers=response.headers, stream=stream,
        extensions=response.extensions,
    )


class AuditTransport(httpx.BaseTransport):
    """An httpx transport that audits each exchange sent through ``transport``.

    Args:
        service_name: names the remote service in events.
        transport: the transport to wrap; default ``httpx.HTTPTransport(**kwargs)``.
        settings: fixed settings; by default the installed provider's, read per call.
        **kwargs: passed to ``httpx.HTTPTransport`` when ``transport`` is not given.
    """

    def __init__(
        self,
        service_name: str = "default",
        transport: httpx.BaseTransport | None = None,
        *,
        settings: OutboundSettings | None = None,
        **kwargs: Any,
    ) -> None:
        self.service_name = service_name
        self.audit_settings = settings
        self.transport = transport if transport is not None else httpx.HTTPTransport(**kwargs)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        outgoing, exchange = _begin(self.service_name, self.audit_settings, request)
        try:
            response = self.transport.handle_request(outgoing)
        except Exception as exc:
            if exchange is not None:
                exchange.finish(exc)
            raise
        if exchange is None:
            return response
        exchange.received(response)
        if not isinstance(response.stream, httpx.SyncByteStream):
            exchange.finish()
            return response
        return _rewrap(response, _watch(_AuditedStream(response.stream, exchange), exchange))

    def close(self) -> None:
        self.transport.close()


class AsyncAuditTransport(httpx.AsyncBaseTransport):
    """An async httpx transport that audits each exchange sent through ``transport``.

    Args:
        service_name: names the remote service in events.
        transport: the transport to wrap; default ``httpx.AsyncHTTPTransport(**kwargs)``.
        settings: fixed settings; by default the installed provider's, read per call.
        **kwargs: passed to ``httpx.AsyncHTTPTransport`` when ``transport`` is not given.
    """

    def __init__(
        self,
        service_name: str = "default",
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        settings: OutboundSettings | None = None,
        **kwargs: Any,
    ) -> None:
        self.service_name = service_name
        self.audit_settings = settings
        self.transport = (
            transport if transport is not None else httpx.AsyncHTTPTransport(**kwargs)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        outgoing, exchange = _begin(self.service_name, self.audit_settings, request)
        try:
            response = await self.transport.handle_async_request(outgoing)
        except Exception as exc:
            if exchange is not None:
                exchange.finish(exc)
            raise
        if exchange is None:
            return response
        exchange.received(response)
        if not isinstance(response.stream, httpx.AsyncByteStream):
            exchange.finish()
            return response
        return _rewrap(response, _watch(_AsyncAuditedStream(response.stream, exchange), exchange))

    async def aclose(self) -> None:
        await self.transport.aclose()
