"""Request auditing: one ``audit.request`` event (level API) per HTTP request.

Add ``activity_audit.middleware.AuditLoggingMiddleware`` to ``MIDDLEWARE``
after ``AuthenticationMiddleware``. It works natively under WSGI and ASGI and
keeps nothing about a request on the instance: the request id, trace id and a
late actor resolver are bound in the audit context (``contextvars``) for the
whole request -- also for paths that are not logged -- so model events emitted
inside the request carry the same user and request id.

Override points (subclass and point ``MIDDLEWARE`` at the subclass)::

    class MyAuditMiddleware(AuditLoggingMiddleware):
        def get_actor(self, request):
            return getattr(request, "api_client", None) or super().get_actor(request)

        def get_context(self, request):
            return {"tenant": request.headers.get("X-Tenant")}
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from asyncio import _get_running_loop
from collections.abc import Awaitable, Callable
from functools import lru_cache
from io import BytesIO
from typing import Any, Final
from urllib.parse import parse_qsl

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponseBase
from django.http.multipartparser import MultiPartParser
from django.http.request import HttpHeaders
from django.http.response import ResponseHeaders
from django.utils.functional import LazyObject, empty

from activity_audit import _json
from activity_audit.bodies import describe_body, describe_multipart, media_type, pairs_to_dict
from activity_audit.conf import conf
from activity_audit.context import (
    AuditScope,
    aiterate_in_scope,
    bind,
    describe_actor,
    get_scope,
    iterate_in_scope,
)
from activity_audit.events import emit, is_enabled
from activity_audit.outbound import redact_url
from activity_audit.redaction import Redactor
from activity_audit.schema import (
    DIAGNOSTIC_LOGGER,
    INTERNAL_REQUEST_MESSAGE,
    REDACTED,
    REQUEST_LOGGER,
    RequestType,
)
from activity_audit.tracing import parse_traceparent

__all__ = [
    "AuditLoggingMiddleware",
    "client_ip",
    "request_user",
    "session_user_id",
    "should_log_path",
]

_diagnostic: Final = logging.getLogger(DIAGNOSTIC_LOGGER)

#: Incoming request ids are kept only when short and made of safe characters;
#: anything else is replaced by a generated id (the header is user-controlled).
_REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")
_EXCEPTION_ATTR: Final = "_activity_audit_exception"


# -- configuration derived from settings, cached per settings value --------------------


#: Paths whose decision is remembered, and the longest one remembered: paths
#: carry ids, so the set is unbounded and partly client-controlled.
_PATH_CACHE_SIZE: Final = 2048
_PATH_CACHE_MAX_LENGTH: Final = 256


def should_log_path(path: str) -> bool:
    """Whether ``path`` is audited under ``AUDIT_REGISTERED_URLS`` / ``..._UNREGISTERED_...``.

    Patterns match at the start of the path (``re.match``), as in earlier releases.
    """
    decisions = conf.path_decisions
    try:
        return decisions[path]
    except KeyError:
        pass
    audited = _match_path(path)
    if len(path) <= _PATH_CACHE_MAX_LENGTH:
        if len(decisions) >= _PATH_CACHE_SIZE:
            decisions.clear()
        decisions[path] = audited
    return audited


def _match_path(path: str) -> bool:
    if any(p.match(path) for p in conf.unregistered_url_patterns):
        return False
    if conf.registered_urls:
        return any(p.match(path) for p in conf.registered_url_patterns)
    return True


@lru_cache(maxsize=16)
def _meta_key(header: str) -> str:
    name = header.upper().replace("-", "_")
    return name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"


@lru_cache(maxsize=8)
def _networks(
    proxies: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("["):  # "[::1]:443"
        value = value[1 : value.find("]")] if "]" in value else value
    elif value.count(":") == 1:  # "10.0.0.1:5678"
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP address.

    ``REMOTE_ADDR`` unless it is one of ``AUDIT_TRUSTED_PROXIES`` (addresses or
    networks); then the ``AUDIT_CLIENT_IP_HEADER`` chain is walked from the right
    and the first hop that is not a trusted proxy is the client. A forwarded
    header from an untrusted peer is ignored: anyone can send one.
    """
    meta = request.META
    remote: str | None = meta.get("REMOTE_ADDR") or None
    proxies = conf.trusted_proxies
    if not proxies or remote is None:
        return remote
    networks = _networks(tuple(proxies))
    remote_ip = _parse_ip(remote)
    if remote_ip is None or not any(remote_ip in net for net in networks):
        return remote
    forwarded: str | None = meta.get(_meta_key(conf.client_ip_header))
    if not forwarded:
        return remote
    client: str = remote
    for hop in reversed(forwarded.split(",")):
        ip = _parse_ip(hop)
        if ip is None:
            # A hop we cannot read: trust nothing to the left of it.
            break
        client = str(ip)
        if not any(ip in net for net in networks):
            break
    return client


# The bits uuid.UUID(version=4) sets: variant RFC 4122, version 4.
_UUID4_CLEAR: Final = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET: Final = (0x8000 << 48) | (4 << 76)


def _new_request_id() -> str:
    """``str(uuid.uuid4())`` without building a UUID object (a third of the cost)."""
    value = int.from_bytes(os.urandom(16)) & _UUID4_CLEAR | _UUID4_SET
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _request_id(request: HttpRequest) -> str:
    incoming = request.META.get(_meta_key(conf.request_id_header))
    if incoming and len(incoming) <= 128 and _REQUEST_ID_RE.fullmatch(incoming):
        return str(incoming)
    return _new_request_id()


def _trace(request: HttpRequest) -> tuple[str | None, str | None]:
    """``(trace_id, traceparent)`` from a valid W3C ``traceparent`` header."""
    header = request.META.get("HTTP_TRACEPARENT")
    parsed = parse_traceparent(header) if header else None
    if parsed is None or header is None:
        return None, None
    return parsed[0], header.strip()


# -- who is acting ------------------------------------------------------------------------


def session_user_id(request: HttpRequest, *, load: bool = True) -> str | None:
    """The id of the user logged in to ``request.session``, without loading the user.

    The lookup Django's auth would do (session key and backend), minus the user
    row: no user-table query, and the session is left unmarked as accessed so
    no ``Vary: Cookie`` is added. With ``load=False`` a session not loaded yet
    is not loaded (no query: used from inside an event loop).
    """
    session = request.__dict__.get("session")
    if session is None:
        return None
    if not load and not hasattr(session, "_session_cache"):
        return None
    from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY, get_user_model

    accessed = session.accessed
    try:
        user_key = session.get(SESSION_KEY)
        backend = session.get(BACKEND_SESSION_KEY)
    finally:
        session.accessed = accessed
    return _valid_user_key(user_key, backend, get_user_model)


async def _asession_user_id(request: HttpRequest) -> str | None:
    session = request.__dict__.get("session")
    if session is None:
        return None
    if hasattr(session, "_session_cache"):
        return session_user_id(request)
    from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY, get_user_model

    accessed = session.accessed
    try:
        user_key = await session.aget(SESSION_KEY)
        backend = await session.aget(BACKEND_SESSION_KEY)
    finally:
        session.accessed = accessed
    return _valid_user_key(user_key, backend, get_user_model)


def _valid_user_key(user_key: Any, backend: Any, get_user_model: Callable[[], Any]) -> str | None:
    if user_key is None or backend not in settings.AUTHENTICATION_BACKENDS:
        return None
    try:
        return str(get_user_model()._meta.pk.to_python(user_key))
    except Exception:
        return None


def _resolved_user(request: HttpRequest) -> tuple[bool, Any]:
    """``(True, user)`` when the app already resolved the user, else ``(False, None)``."""
    attrs = request.__dict__
    user = attrs.get("user")
    if user is not None:
        if not isinstance(user, LazyObject):
            # A real user: DRF sets request._request.user after authenticating,
            # login() and logout() assign request.user.
            return True, user
        wrapped = user.__dict__.get("_wrapped", empty)
        if wrapped is not empty:
            return True, wrapped
    for name in ("_cached_user", "_acached_user"):
        if name in attrs:
            return True, attrs[name]
    return False, None


def request_user(request: HttpRequest, *, load_session: bool = True) -> Any:
    """The user ``request`` acted as, at no cost when the app already knows it.

    A user the view, DRF or ``login()`` already resolved is reused; otherwise
    the id stored in the session is returned (see :func:`session_user_id`).
    """
    known, user = _resolved_user(request)
    if known:
        return user
    return session_user_id(request, load=load_session)


def _in_event_loop() -> bool:
    # get_running_loop() without the RuntimeError it raises outside a loop.
    return _get_running_loop() is not None


# -- bodies ---------------------------------------------------------------------------------


class _TeeStream:
    """Wraps a request's input stream and keeps the first bytes the app reads.

    The app reads exactly what it would have read; the copy lets a body the
    view (or DRF's parsers) consumed from the stream still be recorded.
    """

    __slots__ = ("eof", "head", "limit", "raw", "total")

    def __init__(self, raw: Any, limit: int) -> None:
        self.raw = raw
        self.limit = limit
        self.head = bytearray()
        self.total = 0
        self.eof = False

    def _keep(self, data: bytes, asked: Any) -> bytes:
        if data:
            room = self.limit - len(self.head)
            if room > 0:
                self.head += data[:room]
            self.total += len(data)
        if not data or asked is None or asked < 0:
            self.eof = True
        return data

    def read(self, size: int | None = -1, /) -> bytes:
        return self._keep(self.raw.read(size), size)

    def readline(self, size: int | None = -1, /) -> bytes:
        data = self.raw.readline(size)
        # readline() returning "" means end of stream; a full line is not.
        return self._keep(data, 0 if data else None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class _MetadataUploadHandler:
    """Upload handler recording file parts as (field, name, size, type): content is dropped."""

    chunk_size = 64 * 1024

    def __init__(self) -> None:
        self.files: list[tuple[str, str | None, int | None, str | None]] = []
        self._current: tuple[str, str | None, str | None] | None = None

    def handle_raw_input(self, *args: Any, **kwargs: Any) -> None:
        return None

    def new_file(self, field_name: str, file_name: str, content_type: str, *args: Any,
                 **kwargs: Any) -> None:
        self._current = (field_name, file_name, content_type)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        return None

    def file_complete(self, file_size: int) -> None:
        if self._current is not None:
            field, name, ctype = self._current
            self.files.append((field, name, file_size, ctype))
            self._current = None

    def upload_interrupted(self) -> None:
        return None

    def upload_complete(self) -> None:
        return None


def _content_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _raw_body(request: HttpRequest, tee: _TeeStream | None, limit: int) -> tuple[bytes, int]:
    """``(bytes, size)``: up to ``limit + 1`` bytes of the body and its full size.

    Never triggers ``RequestDataTooBig`` and never takes from the stream what
    anyone could still read: a body is read only when it is cached, peekable
    (a seekable ASGI spool), or fits under both caps and nobody read it.
    """
    attrs = request.__dict__
    cached = attrs.get("_body")
    if cached is not None:
        return cached, len(cached)
    length = _content_length(request)
    stream = attrs.get("_stream")
    raw = tee.raw if tee is not None else stream
    if raw is not None and getattr(raw, "seekable", None) is not None and raw.seekable():
        try:
            position = raw.tell()
            size = raw.seek(0, 2)
            raw.seek(0)
            data = raw.read(limit + 1)
            raw.seek(position)
            return data, size
        except (OSError, ValueError):
            return b"", length
    if not attrs.get("_read_started", False) and 0 < length <= limit and (
        # Read only when needed: each settings attribute costs a Python call.
        (max_memory := settings.DATA_UPLOAD_MAX_MEMORY_SIZE) is None or length <= max_memory
    ):
        # Caches request._body, so anything after us still reads the same body.
        body = request.body
        return body, len(body)
    if tee is not None:
        if not tee.eof and tee.total < length <= limit:
            # The app read part of the body and left the rest: nobody can use it now.
            while not tee.eof and tee.total < length:
                tee.read(length - tee.total)
        return bytes(tee.head), max(tee.total, length)
    return b"", length


def _request_body(request: HttpRequest, tee: _TeeStream | None, limit: int,
                  redactor: Redactor) -> Any:
    content_type = request.META.get("CONTENT_TYPE")
    mtype = media_type(content_type)
    if mtype == "multipart/form-data":
        return _multipart_body(request, tee, limit, redactor)
    data, size = _raw_body(request, tee, limit)
    if not data:
        if not size:
            return None  # what describe_body says of no body
        return {"content_type": mtype or None, "size": size, "truncated": size > limit,
                "read": False}
    return describe_body(data, content_type, max_bytes=limit, redactor=redactor, size=size,
                         record_text=conf.log_text_bodies)


def _multipart_body(request: HttpRequest, tee: _TeeStream | None, limit: int,
                    redactor: Redactor) -> Any:
    attrs = request.__dict__
    files = attrs.get("_files")
    if files is not None:
        post = attrs.get("_post")
        fields = [(k, v) for k, vs in post.lists() for v in vs] if post is not None else []
        metadata = [
            (field, f.name, f.size, getattr(f, "content_type", None))
            for field, items in files.lists()
            for f in items
        ]
        return describe_multipart(fields, metadata, redactor)
    data, size = _raw_body(request, tee, limit)
    if data and size <= limit and len(data) == size:
        handler = _MetadataUploadHandler()
        meta = {**request.META, "CONTENT_LENGTH": str(size)}
        try:
            parser = MultiPartParser(meta, BytesIO(data), [handler],
                                     request.encoding or settings.DEFAULT_CHARSET)
            post, _ = parser.parse()
        except Exception:
            return {"content_type": "multipart/form-data", "size": size, "parse_error": True}
        fields = [(k, v) for k, vs in post.lists() for v in vs]
        return describe_multipart(fields, handler.files, redactor)
    return {"content_type": "multipart/form-data", "size": size, "truncated": size > limit}


def _response_body(response: HttpResponseBase, limit: int, redactor: Redactor) -> Any:
    content_type = response.get("Content-Type")
    if response.streaming:
        # Never consumed or buffered: the iterator belongs to the server.
        return {"streaming": True, "content_type": media_type(content_type) or None}
    content = getattr(response, "content", None)
    if not isinstance(content, bytes):
        return None
    return describe_body(content, content_type, max_bytes=limit, redactor=redactor,
                         record_text=conf.log_text_bodies)


#: Query parameters recorded at most; the rest are counted, not listed.
_MAX_QUERY_PARAMS: Final = 1000
#: Headers whose values are URLs that can carry secrets (OAuth codes, tokens).
_URL_HEADERS: Final = frozenset({"location", "referer", "content-location"})
_MAX_ERROR_MESSAGE: Final = 1000


def _query_params(query: str | None, redactor: Redactor) -> dict[str, Any]:
    """The query string's parameters, every value of a repeated key kept, redacted.

    Parsed here rather than through ``request.GET``: that raises
    ``TooManyFieldsSent`` past ``DATA_UPLOAD_MAX_NUMBER_FIELDS``, and a client
    must not be able to hide a request from the trail with a long query string.
    """
    if not query:
        return {}
    pairs = parse_qsl(query, keep_blank_values=True)
    params = pairs_to_dict(redactor.redact_pairs(pairs[:_MAX_QUERY_PARAMS]))
    if len(pairs) > _MAX_QUERY_PARAMS:
        params["..."] = f"{len(pairs) - _MAX_QUERY_PARAMS} more parameters not recorded"
    return params


#: Header-name caches are cleared past this size, and longer names are not
#: remembered (names are client-controlled).
_HEADER_CACHE_SIZE: Final = 1024
_HEADER_CACHE_MAX_LENGTH: Final = 128
#: META key -> the name ``request.headers`` gives it ("" for keys that are not headers).
_meta_header_names: dict[str, str] = {}
#: Header name -> whether its value is a URL (see _URL_HEADERS).
_url_header_names: dict[str, bool] = {}
_REQUEST_HEADERS: Final = HttpRequest.headers
#: Request class -> whether its ``headers`` is Django's (request classes are few).
_plain_headers: dict[type[HttpRequest], bool] = {}


def _request_headers(request: HttpRequest) -> dict[str, Any]:
    """``dict(request.headers.items())``, read from ``request.META`` directly.

    Building :class:`~django.http.request.HttpHeaders` parses every META key
    (CGI and ``wsgi.*`` ones too) on every request; the names are remembered
    here instead. Header names that are all ASCII cannot differ only in case
    (they are title-cased), so a plain dict keyed by name is what the
    case-insensitive mapping would hold; anything else takes Django's path.
    """
    cls = type(request)
    plain = _plain_headers.get(cls)
    if plain is None:
        # Reading the descriptor off the class costs a Python call: once per class.
        plain = _plain_headers[cls] = cls.headers is _REQUEST_HEADERS
    if not plain:
        return dict(request.headers.items())
    cached = request.__dict__.get("headers")
    if cached is not None:
        # Already built by the app: items() would look each name up again.
        if type(cached) is HttpHeaders:
            # Its names have no "_", so HttpHeaders' own lookup finds each pair.
            return dict(cached._store.values())
        return dict(cached.items())
    names = _meta_header_names
    headers: dict[str, Any] = {}
    for key, value in request.META.items():
        name = names.get(key)
        if name is None:
            name = HttpHeaders.parse_header_name(key) or ""
            if not name.isascii():
                return dict(request.headers.items())
            if len(key) <= _HEADER_CACHE_MAX_LENGTH:
                if len(names) >= _HEADER_CACHE_SIZE:
                    names.clear()
                names[key] = name
        if name:
            headers[name] = value
    return headers


def _response_headers(response: HttpResponseBase) -> dict[str, Any]:
    """``dict(response.items())``, without a case-insensitive lookup per header."""
    if type(response).items is HttpResponseBase.items:
        headers = response.headers
        if type(headers) is ResponseHeaders:
            # items() yields exactly the (name, value) pairs the mapping stores.
            return dict(headers._store.values())
    return dict(response.items())


def _has_header(response: Any, header: str) -> bool:
    """``header in response``, without the KeyError the mapping's ``in`` raises and catches."""
    headers = getattr(response, "headers", None)
    if (
        type(headers) is ResponseHeaders
        and type(response).__contains__ is HttpResponseBase.__contains__
    ):
        return header.lower() in headers._store
    return header in response


def _is_url_header(name: str) -> bool:
    try:
        return _url_header_names[name]
    except KeyError:
        pass
    is_url = name.lower() in _URL_HEADERS
    if len(name) <= _HEADER_CACHE_MAX_LENGTH:
        if len(_url_header_names) >= _HEADER_CACHE_SIZE:
            _url_header_names.clear()
        _url_header_names[name] = is_url
    return is_url


def _headers(headers: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """Headers redacted by name, and URL-valued ones with their secret parameters redacted."""
    if type(redactor).redact_headers is Redactor.redact_headers:
        # Redactor.redact_headers and the URL pass below, in one pass.
        sensitive = redactor.is_sensitive_header
        substitute = redactor.substitute
        redacted: dict[str, Any] = {}
        url_names = _url_header_names
        for name, value in headers.items():
            if sensitive(name):
                value = substitute
            is_url = url_names.get(name)
            if is_url is None:
                is_url = _is_url_header(name)
            if is_url and isinstance(value, str) and value != REDACTED:
                value = redact_url(value, redactor)
            redacted[name] = value
        return redacted
    redacted = redactor.redact_headers(headers)
    for name, value in redacted.items():
        if _is_url_header(name) and isinstance(value, str) and value != REDACTED:
            redacted[name] = redact_url(value, redactor)
    return redacted


def _error_message(exception: BaseException) -> str:
    """``"Type: message"``, capped; database errors by type only.

    A database error's text repeats row values (PostgreSQL's ``DETAIL: Key
    (ssn)=(...)``, MariaDB's ``Duplicate entry '...'``), which may be secrets.
    """
    if isinstance(exception, DatabaseError):
        return f"{type(exception).__name__} (database error text not recorded)"
    text = f"{type(exception).__name__}: {exception}"
    if len(text) > _MAX_ERROR_MESSAGE:
        text = text[:_MAX_ERROR_MESSAGE] + "…"
    return text


_INTERNAL: Final = RequestType.INTERNAL.value
_NATIVE_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_STR_TYPE: Final = frozenset({str})


def _user_info(user_info: dict[str, Any]) -> Any:
    """``_json.jsonable(user_info)``: a plain copy when it is already flat and native."""
    if (
        type(user_info) is dict
        and _STR_TYPE.issuperset(map(type, user_info))
        and _NATIVE_SCALARS.issuperset(map(type, user_info.values()))
    ):
        return dict(user_info)
    return _json.jsonable(user_info)


def _not_recorded() -> dict[str, str]:
    """Log the exception being handled; what the event records for the part it cost."""
    _diagnostic.exception("could not describe part of an audited request")
    return {"error": "not recorded"}


# -- the middleware ---------------------------------------------------------------------------


class _Capture:
    """What one request's event needs, kept in the call's frame, never on the instance."""

    __slots__ = ("start", "tee")

    def __init__(self, start: float, tee: _TeeStream | None) -> None:
        self.start = start
        self.tee = tee


class AuditLoggingMiddleware:
    """Logs one ``audit.request`` event per request and binds the audit context.

    Sync and async capable without ``MiddlewareMixin``: under ASGI ``__acall__``
    runs on the event loop with no thread hop. Override :meth:`get_actor` to
    decide who is acting and :meth:`get_context` to add ``extra`` fields to
    every event of the request (request and model events).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    # -- override points --------------------------------------------------------------------

    def get_actor(self, request: HttpRequest) -> Any:
        """Who the request acted as; called late (after authentication ran in the view).

        Returns a user instance, an anonymous user, an id, or None. The default
        reuses the user the app resolved and otherwise reads the session's user
        id without a query on the user table (see :func:`request_user`).
        """
        return request_user(request, load_session=not _in_event_loop())

    def get_context(self, request: HttpRequest) -> dict[str, Any]:
        """Extra fields bound for the whole request, before the view runs.

        They go into ``extra`` on the request event and on every model event
        of the request. Return JSON-native values.
        """
        return {}

    # -- request flow -----------------------------------------------------------------------

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """Remember the view's exception for the event; Django then renders the 500."""
        request.__dict__[_EXCEPTION_ATTR] = exception

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        capture = self._begin(request)
        with bind(**self._scope_values(request)) as scope:
            try:
                response = self.get_response(request)
            except BaseException as exc:
                if capture is not None:
                    self._log(request, None, capture, scope.request_id, scope.trace_id,
                              self.get_actor, exc)
                raise
            if capture is not None:
                self._log(request, response, capture, scope.request_id, scope.trace_id,
                          self.get_actor, None)
            self._finish_response(response, scope)
            return response

    async def __acall__(self, request: HttpRequest) -> Any:
        capture = self._begin(request)
        get_response: Callable[[HttpRequest], Awaitable[Any]] = self.get_response
        with bind(**self._scope_values(request)) as scope:
            try:
                response = await get_response(request)
            except BaseException as exc:
                if capture is not None:
                    actor = await self._aget_actor(request)
                    self._log(request, None, capture, scope.request_id, scope.trace_id,
                              lambda _r: actor, exc)
                raise
            if capture is not None:
                actor = await self._aget_actor(request)
                self._log(request, response, capture, scope.request_id, scope.trace_id,
                          lambda _r: actor, None)
            self._finish_response(response, scope)
            return response

    async def _aget_actor(self, request: HttpRequest) -> Any:
        # A session not loaded yet is loaded with Django's async session API so
        # the event loop never runs a blocking query.
        try:
            if type(self).get_actor is AuditLoggingMiddleware.get_actor:
                known, user = _resolved_user(request)
                return user if known else await _asession_user_id(request)
            return self.get_actor(request)
        except Exception:
            _diagnostic.exception("audit actor resolution failed")
            return None

    def _scope_values(self, request: HttpRequest) -> dict[str, Any]:
        try:
            trace_id, traceparent = _trace(request)
            values: dict[str, Any] = {
                "actor": None,
                "actor_resolver": lambda: self.get_actor(request),
                "request_id": _request_id(request),
                "trace_id": trace_id,
                "traceparent": traceparent,
            }
            extra = self.get_context(request)
            if extra:
                values["extra"] = extra
            return values
        except Exception:
            _diagnostic.exception("audit context for request failed")
            return {"actor": None, "request_id": _new_request_id()}

    def _begin(self, request: HttpRequest) -> _Capture | None:
        """Start capturing when this request is audited; None when it is not."""
        start = time.perf_counter()
        try:
            if not is_enabled(REQUEST_LOGGER) or not should_log_path(request.path):
                return None
            methods = conf.log_methods_upper
            if methods is not None and (request.method or "").upper() not in methods:
                return None
            tee = None
            attrs = request.__dict__
            stream = attrs.get("_stream")
            if (
                stream is not None
                and _content_length(request) > 0
                and "_body" not in attrs
                and not attrs.get("_read_started", False)
                and not (getattr(stream, "seekable", None) is not None and stream.seekable())
            ):
                tee = _TeeStream(stream, conf.max_body_bytes + 1)
                request._stream = tee  # type: ignore[assignment]
            return _Capture(start, tee)
        except Exception:
            _diagnostic.exception("audit request capture failed")
            return None

    def _finish_response(self, response: Any, scope: AuditScope) -> None:
        self._set_request_id_header(response, scope.request_id)
        try:
            if getattr(response, "streaming", False):
                # The content is produced after this middleware returned: produce
                # it in the request's scope, so events it causes (READs of the
                # rows a streamed export loads) carry the request's user and id.
                content = response.streaming_content
                if getattr(response, "is_async", False):
                    response.streaming_content = aiterate_in_scope(content, scope)
                else:
                    response.streaming_content = iterate_in_scope(content, scope)
        except Exception:
            _diagnostic.exception("could not bind the audit context to a streaming response")

    def _set_request_id_header(self, response: Any, request_id: str | None) -> None:
        try:
            header = conf.request_id_header
            if request_id and not _has_header(response, header):
                response[header] = request_id
        except Exception:
            _diagnostic.exception("could not set the request id header")

    def _log(
        self,
        request: HttpRequest,
        response: HttpResponseBase | None,
        capture: _Capture,
        request_id: str | None,
        trace_id: str | None,
        get_actor: Callable[[HttpRequest], Any],
        raised: BaseException | None,
    ) -> None:
        execution_time = time.perf_counter() - capture.start
        try:
            status = response.status_code if response is not None else 500
            statuses = conf.log_status_codes
            if statuses is not None and status not in statuses:
                return
            try:
                actor = get_actor(request)
            except Exception:
                _diagnostic.exception("audit actor resolution failed")
                actor = None
            user_id, user_info = describe_actor(actor)
            exception = request.__dict__.pop(_EXCEPTION_ATTR, None) or raised
            event = self.build_event(request, response, capture, status=status,
                                     user_id=user_id, user_info=user_info, exception=exception,
                                     request_id=request_id, trace_id=trace_id,
                                     execution_time=execution_time)
            emit(REQUEST_LOGGER, INTERNAL_REQUEST_MESSAGE, event)
        except Exception:
            _diagnostic.exception("could not build the audit request event")

    def build_event(
        self,
        request: HttpRequest,
        response: HttpResponseBase | None,
        capture: _Capture,
        *,
        status: int,
        user_id: str | None,
        user_info: dict[str, Any],
        exception: BaseException | None,
        request_id: str | None,
        trace_id: str | None,
        execution_time: float,
    ) -> dict[str, Any]:
        """The event dict (JSON-native values, redacted). Subclasses may add keys."""
        redactor = conf.redactor
        limit = conf.max_body_bytes
        meta = request.META
        # Each part on its own: one that cannot be described must not cost the
        # event. (A try block per part, not a helper called with a lambda per
        # part: try is free, the two calls and the closure were not.)
        method = request.method
        path = request.path
        try:
            scheme: Any = request.scheme
        except Exception:
            scheme = _not_recorded()
        try:
            query_params: Any = _query_params(meta.get("QUERY_STRING"), redactor)
        except Exception:
            query_params = _not_recorded()
        try:
            headers: Any = _headers(_request_headers(request), redactor)
        except Exception:
            headers = _not_recorded()
        try:
            ip: Any = client_ip(request)
        except Exception:
            ip = _not_recorded()
        user_agent = meta.get("HTTP_USER_AGENT")
        try:
            body: Any = _request_body(request, capture.tee, limit, redactor)
        except Exception:
            body = _not_recorded()
        request_repr: dict[str, Any] = {
            "method": method,
            "path": path,
            "scheme": scheme,
            "query_params": query_params,
            "headers": headers,
            "client_ip": ip,
            "user_agent": user_agent,
            "user": user_id,
            "body": body,
        }
        response_repr: dict[str, Any] = {"status_code": status, "headers": {}, "body": None}
        if response is not None:
            try:
                response_repr["headers"] = _headers(_response_headers(response), redactor)
            except Exception:
                response_repr["headers"] = _not_recorded()
            try:
                response_repr["body"] = _response_body(response, limit, redactor)
            except Exception:
                response_repr["body"] = _not_recorded()
        return {
            "service_name": conf.service_name,
            "request_type": _INTERNAL,
            "protocol": "http",
            "user_id": user_id,
            "user_info": _user_info(user_info),
            "request_repr": request_repr,
            "response_repr": response_repr,
            "error_message": _error_message(exception) if exception is not None else None,
            "execution_time": execution_time,
            "request_id": request_id,
            "trace_id": trace_id,
            "extra": dict(get_scope().extra),
        }
