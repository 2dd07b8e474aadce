"""What every audited outbound client shares: settings, propagation, representation, emission.

The clients (:mod:`activity_audit.protocols` for requests and SFTP,
:mod:`activity_audit.httpx_client` for httpx) only adapt their library's
objects to the functions here, so every client records the same shapes with
the same redaction.

Core module: no Django import. The clients read an :class:`OutboundSettings`
on each call, from a provider the Django app installs at startup (mapping the
``AUDIT_*`` settings), or from a fixed ``settings=`` argument.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from activity_audit import _json, events
from activity_audit.bodies import describe_body, describe_multipart, media_type
from activity_audit.context import get_scope
from activity_audit.redaction import Redactor
from activity_audit.schema import (
    DIAGNOSTIC_LOGGER,
    EXTERNAL_REQUEST_MESSAGE,
    REDACTED,
    REQUEST_LOGGER,
    RequestType,
)
from activity_audit.tracing import child_traceparent

__all__ = [
    "PROTOCOL_HTTP",
    "PROTOCOL_SFTP",
    "OutboundSettings",
    "add_missing_headers",
    "build_event",
    "current_settings",
    "describe_request_body",
    "describe_response_body",
    "emit_event",
    "error_message",
    "headers_repr",
    "is_auditing",
    "propagation_headers",
    "redact_url",
    "redact_url_parts",
    "set_settings_provider",
    "streaming_body",
]

_diagnostic: Final = logging.getLogger(DIAGNOSTIC_LOGGER)

#: ``protocol`` of events for HTTP(S) exchanges.
PROTOCOL_HTTP: Final = "http"
#: ``protocol`` of events for SFTP operations.
PROTOCOL_SFTP: Final = "sftp"


# -- settings ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    """What the outbound clients read on each call.

    Attributes:
        enabled: emit events (at level API). ``False`` emits nothing; request-id
            and trace headers are still propagated.
        request_id_header: header carrying the current request id downstream.
        max_body_bytes: bodies larger than this are recorded by type and size.
        redactor: applied to headers, query strings and parsed bodies.
        record_text: record text bodies (``text/*``, XML, ndjson, JavaScript)
            decoded. Off by default: a key regex cannot find a secret inside a
            SOAP envelope or an HTML page, so text is recorded by type and size.
    """

    enabled: bool = True
    request_id_header: str = "X-Request-ID"
    max_body_bytes: int = 64 * 1024
    redactor: Redactor = field(default_factory=Redactor)
    record_text: bool = False


_DEFAULT_SETTINGS: Final = OutboundSettings()
_provider: Callable[[], OutboundSettings] | None = None


def set_settings_provider(provider: Callable[[], OutboundSettings] | None) -> None:
    """Install the function the clients call for their settings (``None``: defaults).

    The Django app installs one reading ``AUDIT_*`` settings on each call, so
    ``override_settings`` applies to clients created earlier.
    """
    global _provider
    _provider = provider


def current_settings() -> OutboundSettings:
    """The provider's :class:`OutboundSettings`, or the defaults. Never raises."""
    if _provider is None:
        return _DEFAULT_SETTINGS
    try:
        return _provider()
    except Exception:
        _diagnostic.exception("outbound settings provider failed; using defaults")
        return _DEFAULT_SETTINGS


def is_auditing(settings: OutboundSettings) -> bool:
    """Whether a call made with ``settings`` emits an event (enabled, and the logger listens)."""
    return settings.enabled and events.is_enabled(REQUEST_LOGGER)


# -- propagation ---------------------------------------------------------------------


def propagation_headers(request_id_header: str) -> dict[str, str]:
    """Headers joining a downstream call to the current context.

    The request id under ``request_id_header`` when the context has one, and a
    ``traceparent`` with the incoming trace id and flags and a new span id per
    call when the context carries a valid incoming ``traceparent``.
    """
    scope = get_scope()
    headers: dict[str, str] = {}
    if scope.request_id and request_id_header:
        headers[request_id_header] = str(scope.request_id)
    traceparent = child_traceparent(scope.traceparent)
    if traceparent is not None:
        headers["traceparent"] = traceparent
    return headers


def add_missing_headers(target: MutableMapping[str, Any], extra: Mapping[str, str]) -> None:
    """Add the headers of ``extra`` that ``target`` does not have.

    ``target`` should be case-insensitive (requests' ``CaseInsensitiveDict``,
    ``httpx.Headers``): a header the caller set, in any case, is never overwritten.
    """
    for name, value in extra.items():
        if name not in target:
            target[name] = value


# -- URLs and headers ----------------------------------------------------------------


def _redact_query(query: str, redactor: Redactor) -> tuple[str, list[str]]:
    segments: list[str] = []
    secrets: list[str] = []
    for segment in query.split("&"):
        key, eq, value = segment.partition("=")
        if eq and redactor.is_sensitive_key(unquote_plus(key)):
            if value:
                secrets.append(value)
            segment = f"{key}={REDACTED}"
        segments.append(segment)
    return "&".join(segments), secrets


def redact_url_parts(url: str, redactor: Redactor) -> tuple[str, list[str]]:
    """``url`` redacted as by :func:`redact_url`, and the secret values it held.

    The secrets are what :func:`error_message` scrubs from exception messages,
    which often repeat the URL.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, []
    secrets: list[str] = []
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if colon:
            if password:
                secrets.append(password)
            netloc = f"{user}:{REDACTED}@{hostport}"
    query, found = _redact_query(parts.query, redactor) if parts.query else ("", [])
    secrets += found
    fragment, found = (
        _redact_query(parts.fragment, redactor) if "=" in parts.fragment else (parts.fragment, [])
    )
    secrets += found
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment)), secrets


def redact_url(url: str, redactor: Redactor) -> str:
    """``url`` with the values of sensitive query parameters and any password replaced."""
    return redact_url_parts(url, redactor)[0]


def _header_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def headers_repr(headers: Mapping[str, Any], redactor: Redactor) -> dict[str, str]:
    """``headers`` as a ``str -> str`` dict (bytes decoded as Latin-1), redacted."""
    return redactor.redact_headers({str(k): _header_text(v) for k, v in headers.items()})


# -- bodies --------------------------------------------------------------------------


def _content_length(headers: Mapping[str, Any]) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    text = _header_text(value).strip()
    return int(text) if text.isdigit() else None


_PARAM_RE: Final = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


def _header_params(value: str) -> dict[str, str]:
    return {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3).strip()
        for m in _PARAM_RE.finditer(value)
    }


def _parse_multipart(
    body: bytes, content_type: str | None, max_bytes: int
) -> tuple[list[tuple[str, Any]], list[tuple[str, str | None, int | None, str | None]]] | None:
    """Fields and file metadata of a prepared multipart body, or None if malformed.

    Only offsets are computed for file parts: their content is never copied.
    """
    boundary = _header_params(content_type or "").get("boundary")
    if not boundary:
        return None
    delimiter = b"--" + boundary.encode("latin-1")
    pos = body.find(delimiter)
    if pos < 0:
        return None
    fields: list[tuple[str, Any]] = []
    files: list[tuple[str, str | None, int | None, str | None]] = []
    while True:
        pos += len(delimiter)
        if body.startswith(b"--", pos):
            return fields, files
        if body.startswith(b"\r\n", pos):
            pos += 2
        header_end = body.find(b"\r\n\r\n", pos)
        if header_end < 0:
            return None
        start = header_end + 4
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            return None
        part_headers: dict[str, str] = {}
        for line in body[pos:header_end].decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                part_headers[name.strip().lower()] = value.strip()
        params = _header_params(part_headers.get("content-disposition", ""))
        name = params.get("name", "")
        size = end - start
        if "filename" in params:
            files.append((name, params["filename"], size, part_headers.get("content-type")))
        elif size > max_bytes:
            fields.append((name, {"size": size, "truncated": True}))
        else:
            fields.append((name, body[start:end].decode("utf-8", "replace")))
        pos = end + 2


def describe_response_body(
    body: bytes | None,
    content_type: str | None,
    settings: OutboundSettings,
    *,
    size: int | None = None,
) -> Any:
    """A body described by :func:`~activity_audit.bodies.describe_body` under ``settings``.

    The cap, the redactor and whether text is recorded come from ``settings``.

    Args:
        body: the raw bytes (may be the first ``max_body_bytes + 1`` bytes only).
        content_type: the ``Content-Type`` header value.
        settings: the call's settings.
        size: the full size when ``body`` holds only a prefix.
    """
    return describe_body(
        body, content_type, max_bytes=settings.max_body_bytes, redactor=settings.redactor,
        size=size, record_text=settings.record_text,
    )


def describe_request_body(
    body: bytes, content_type: str | None, settings: OutboundSettings
) -> Any:
    """A complete request body as :func:`describe_response_body` does, and multipart.

    A ``multipart/form-data`` body is parsed for field values (redacted) and
    file names and sizes; file content is never copied.
    """
    if media_type(content_type) == "multipart/form-data":
        parsed = _parse_multipart(body, content_type, settings.max_body_bytes)
        if parsed is None:
            return {"content_type": "multipart/form-data", "size": len(body), "malformed": True}
        return describe_multipart(parsed[0], parsed[1], settings.redactor)
    return describe_response_body(body, content_type, settings)


def streaming_body(headers: Mapping[str, Any]) -> dict[str, Any]:
    """A body auditing does not read: its type and announced size, ``streaming: true``."""
    ctype = headers.get("Content-Type")
    return {
        "content_type": media_type(_header_text(ctype)) if ctype else None,
        "size": _content_length(headers),
        "streaming": True,
    }


# -- events --------------------------------------------------------------------------


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 2:
            text = text.replace(secret, REDACTED)
    return text


def error_message(exc: BaseException, secrets: list[str]) -> str:
    """``"<module>.<Exception>: <message>"`` with every value of ``secrets`` replaced.

    Exception messages repeat the URL (urllib3: "Max retries exceeded with
    url: ..."), so the secrets of :func:`redact_url_parts` are scrubbed.
    """
    cls = type(exc)
    name = cls.__qualname__
    if cls.__module__ != "builtins":
        name = f"{cls.__module__}.{name}"
    return _scrub(f"{name}: {exc}", secrets)


def build_event(
    service_name: str,
    protocol: str,
    ctx: dict[str, Any],
    request_repr: dict[str, Any],
    response_repr: dict[str, Any] | None,
    error_message: str | None,
    elapsed: float,
) -> dict[str, Any]:
    """The fields of one external request event.

    Args:
        service_name: the remote service, as named by the client's user.
        protocol: :data:`PROTOCOL_HTTP` or :data:`PROTOCOL_SFTP`.
        ctx: :func:`activity_audit.context.context_fields`, read before the call.
        request_repr: what was sent.
        response_repr: what came back; ``None`` when nothing did.
        error_message: :func:`error_message` of the failure, or ``None``.
        elapsed: seconds (``time.perf_counter``).
    """
    event = {
        **ctx,
        "service_name": service_name,
        "request_type": RequestType.EXTERNAL.value,
        "protocol": protocol,
        "request_repr": request_repr,
        "response_repr": response_repr,
        "error_message": error_message,
        "execution_time": elapsed,
    }
    event["extra"] = _json.jsonable(ctx.get("extra", {}))
    return event


def emit_event(event: dict[str, Any]) -> None:
    """Emit ``event`` (from :func:`build_event`) on ``audit.request`` at level API."""
    events.emit(REQUEST_LOGGER, EXTERNAL_REQUEST_MESSAGE, event)
