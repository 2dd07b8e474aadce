"""Audited clients for outbound calls: HTTP (``requests``) and SFTP (``paramiko``).

Every exchange becomes one event on ``audit.request`` at level API, with
``request_type`` "external", the caller's ``service_name`` and the actor and
request id of the current audit context. Errors are recorded and then re-raised
unchanged; the clients keep no per-call state.

Core module: no Django import. Settings, propagation and the event shapes
shared with :mod:`activity_audit.httpx_client` live in
:mod:`activity_audit.outbound`; its settings names are re-exported here, their
published path.

The current request id and W3C ``traceparent`` (with a fresh span id per call)
are sent on outbound HTTP requests, so the downstream service's logs join ours.
"""

from __future__ import annotations

import base64
import importlib
import io
import logging
import os
import posixpath
import stat
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType, TracebackType
from typing import IO, Any, Final

import requests
from requests.adapters import HTTPAdapter

from activity_audit.context import context_fields
from activity_audit.outbound import (
    PROTOCOL_HTTP,
    PROTOCOL_SFTP,
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
    redact_url,
    redact_url_parts,
    set_settings_provider,
    streaming_body,
)
from activity_audit.schema import DIAGNOSTIC_LOGGER

__all__ = [
    "PROTOCOL_HTTP",
    "PROTOCOL_SFTP",
    "AuditHTTPAdapter",
    "HTTPClient",
    "OutboundSettings",
    "SFTPClient",
    "current_settings",
    "propagation_headers",
    "redact_url",
    "set_settings_provider",
]

_diagnostic: Final = logging.getLogger(DIAGNOSTIC_LOGGER)


# -- HTTP: requests --------------------------------------------------------------


class AuditHTTPAdapter(HTTPAdapter):
    """An :class:`~requests.adapters.HTTPAdapter` that audits every exchange it sends.

    Mount it on any :class:`requests.Session` (``HTTPClient`` does so for
    ``http://`` and ``https://``). Each call to :meth:`send` -- one per HTTP
    exchange, so one per redirect hop -- emits one event; exceptions are
    recorded and re-raised unchanged.

    Args:
        service_name: names the remote service in events.
        settings: fixed settings; by default the installed provider's, read per call.
        **kwargs: passed to :class:`~requests.adapters.HTTPAdapter`.
    """

    # Pickled state (requests pickles adapters and sessions attribute by attribute).
    __attrs__ = [*HTTPAdapter.__attrs__, "service_name", "audit_settings"]

    def __init__(
        self, service_name: str = "default", *, settings: OutboundSettings | None = None,
        **kwargs: Any,
    ) -> None:
        self.service_name = service_name
        self.audit_settings = settings
        super().__init__(**kwargs)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        settings = self.audit_settings or current_settings()
        audit = False
        ctx: dict[str, Any] = {}
        try:
            outgoing = request.copy()
            # A copy, so each redirect hop (rebuilt from the caller's request)
            # gets its own span id, and the caller's object is left as it was.
            add_missing_headers(outgoing.headers, propagation_headers(settings.request_id_header))
            request = outgoing
            audit = is_auditing(settings)
            ctx = context_fields() if audit else {}
        except Exception:
            _diagnostic.exception("outbound HTTP auditing failed before the call")
        started = time.perf_counter()
        try:
            response = super().send(
                request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                proxies=proxies,
            )
            if audit and not stream and not response.is_redirect:
                # Session.send reads the body right after us; reading it here
                # times the whole exchange and records body read errors. A
                # redirect's body is left alone: requests reads it leniently
                # (a broken gzip body must not fail the hop).
                _ = response.content
        except Exception as exc:
            if audit:
                self._record(settings, ctx, request, None, stream, exc, started)
            raise
        if audit:
            self._record(settings, ctx, request, response, stream, None, started)
        return response

    def _record(
        self,
        settings: OutboundSettings,
        ctx: dict[str, Any],
        request: requests.PreparedRequest,
        response: requests.Response | None,
        stream: bool,
        error: BaseException | None,
        started: float,
    ) -> None:
        try:
            redactor = settings.redactor
            url, secrets = redact_url_parts(request.url or "", redactor)
            body = request.body
            if body is None:
                body_repr: Any = None
            elif isinstance(body, (bytes, str)):
                raw = body.encode("utf-8") if isinstance(body, str) else body
                ctype = request.headers.get("Content-Type")
                body_repr = describe_request_body(raw, ctype, settings)
            else:
                # A file or generator streamed upload: auditing must not read it.
                body_repr = streaming_body(request.headers)
            request_repr = {
                "method": request.method,
                "endpoint": url,
                "headers": headers_repr(request.headers, redactor),
                "body": body_repr,
            }
            response_repr: dict[str, Any] | None = None
            if response is not None:
                if stream:
                    resp_body: Any = streaming_body(response.headers)
                elif response.is_redirect:
                    resp_body = {**streaming_body(response.headers), "streaming": False,
                                 "read": False}
                else:
                    resp_body = describe_response_body(
                        response.content, response.headers.get("Content-Type"), settings
                    )
                response_repr = {
                    "status_code": response.status_code,
                    "headers": headers_repr(response.headers, redactor),
                    "body": resp_body,
                }
            message = error_message(error, secrets) if error is not None else None
            emit_event(build_event(self.service_name, PROTOCOL_HTTP, ctx, request_repr,
                               response_repr, message, time.perf_counter() - started))
        except Exception:
            _diagnostic.exception("could not record outbound HTTP call to %s", self.service_name)


class HTTPClient(requests.Session):
    """A :class:`requests.Session` whose HTTP(S) exchanges are audited.

    Every verb, ``json=``, ``data=``, ``files=``, streaming and each redirect
    hop is recorded, because auditing happens in the transport adapter.

    Args:
        service_name: names the remote service in events.
        raise_errors: deprecated. ``False`` restores the behaviour of earlier
            releases -- a failed call (``requests.RequestException``) returns
            ``None`` instead of raising -- and emits a ``DeprecationWarning``.
        settings: fixed :class:`OutboundSettings`; by default read per call
            from the installed provider (the Django ``AUDIT_*`` settings).
    """

    __attrs__ = [*requests.Session.__attrs__, "service_name", "raise_errors"]

    def __init__(
        self,
        service_name: str = "default",
        *,
        raise_errors: bool = True,
        settings: OutboundSettings | None = None,
    ) -> None:
        super().__init__()
        if not raise_errors:
            warnings.warn(
                "HTTPClient(raise_errors=False) is deprecated: errors are logged and "
                "re-raised by default; catch requests.RequestException instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        self.service_name = service_name
        self.raise_errors = raise_errors
        self.mount("https://", AuditHTTPAdapter(service_name, settings=settings))
        self.mount("http://", AuditHTTPAdapter(service_name, settings=settings))

    # The deprecated mode returns None on error, which the supertype does not allow.
    def request(  # type: ignore[override]
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response | None:
        """Send a request; see :meth:`requests.Session.request`."""
        if self.raise_errors:
            return super().request(method, url, *args, **kwargs)
        try:
            return super().request(method, url, *args, **kwargs)
        except requests.RequestException:
            return None


# -- SFTP: paramiko --------------------------------------------------------------


def _import_paramiko() -> ModuleType:
    try:
        return importlib.import_module("paramiko")
    except ImportError as exc:
        raise ImportError(
            "activity_audit.protocols.SFTPClient needs paramiko: "
            "pip install 'django-activity-audit[sftp]'"
        ) from exc


class SFTPClient:
    """An SFTP client (paramiko) whose operations are audited, one event each.

    The interface of earlier releases is kept -- ``connect()``, ``upload(folder,
    filename, content)``, ``close()`` -- with ``download``, ``listdir``,
    key-based auth and use as a context manager. Errors are recorded and
    re-raised.

    The server's host key is verified: against ``host_key`` when pinned (an
    OpenSSH public key line such as ``"ssh-ed25519 AAAA..."`` or a paramiko
    key), else against ``known_hosts`` (a file; default ``~/.ssh/known_hosts``).
    An unknown host is rejected unless ``auto_add_host_key=True``.

    Args:
        host, port, username, password: the server and credentials.
        service_name: names the remote service in events.
        pkey: a paramiko private key object, for key-based auth.
        key_filename: path to a private key file, for key-based auth.
        passphrase: decrypts ``key_filename``.
        known_hosts: a known_hosts file to verify the host key against.
        host_key: the server's pinned public key.
        auto_add_host_key: accept an unknown host key (opt-in; insecure).
        timeout: TCP connect and SSH banner/auth timeout, in seconds.
        settings: fixed :class:`OutboundSettings`; default: the provider's.

    Raises:
        ImportError: paramiko is not installed (the ``sftp`` extra).
    """

    def __init__(
        self,
        host: str,
        port: int = 22,
        username: str | None = None,
        password: str | None = None,
        service_name: str = "default",
        *,
        pkey: Any = None,
        key_filename: str | os.PathLike[str] | None = None,
        passphrase: str | None = None,
        known_hosts: str | os.PathLike[str] | None = None,
        host_key: Any = None,
        auto_add_host_key: bool = False,
        timeout: float = 30.0,
        settings: OutboundSettings | None = None,
    ) -> None:
        self._paramiko = _import_paramiko()
        self.host = host
        self.port = int(port)
        self.username = username
        self.password = password
        self.service_name = service_name
        self.pkey = pkey
        self.key_filename = os.fspath(key_filename) if key_filename is not None else None
        self.passphrase = passphrase
        self.known_hosts = os.fspath(known_hosts) if known_hosts is not None else None
        self.host_key = host_key
        self.auto_add_host_key = auto_add_host_key
        self.timeout = timeout
        self.audit_settings = settings
        self._ssh: Any = None
        #: The open paramiko ``SFTPClient`` (``None`` until connected).
        self.channel: Any = None

    # -- connection ------------------------------------------------------------
    def _pinned_key(self) -> Any:
        if not isinstance(self.host_key, str):
            return self.host_key
        parts = self.host_key.split()
        if len(parts) < 2:
            raise ValueError("host_key must be an OpenSSH public key line: 'TYPE BASE64'")
        return self._paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))

    def _new_ssh_client(self) -> Any:
        paramiko = self._paramiko
        ssh = paramiko.SSHClient()
        if self.host_key is not None:
            key = self._pinned_key()
            name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
            # Only the pinned key: system known_hosts would be consulted first.
            ssh.get_host_keys().add(name, key.get_name(), key)
        else:
            # Read-only: paramiko never writes this file back.
            ssh.load_system_host_keys(self.known_hosts)
        policy = paramiko.AutoAddPolicy() if self.auto_add_host_key else paramiko.RejectPolicy()
        ssh.set_missing_host_key_policy(policy)
        return ssh

    def connect(self) -> tuple[Any, None]:
        """Open the connection (once) and return ``(paramiko_sftp_client, None)``.

        The pair is the return shape of earlier releases; errors now raise
        (``paramiko.SSHException``, ``paramiko.AuthenticationException``,
        ``paramiko.BadHostKeyException``, ``OSError``).
        """
        if self.channel is not None:
            return self.channel, None
        with self._operation("connect", None, None):
            ssh = self._new_ssh_client()
            try:
                ssh.connect(
                    self.host, self.port, username=self.username, password=self.password,
                    pkey=self.pkey, key_filename=self.key_filename, passphrase=self.passphrase,
                    timeout=self.timeout, banner_timeout=self.timeout,
                    auth_timeout=self.timeout, allow_agent=False, look_for_keys=False,
                )
                channel = ssh.open_sftp()
            except BaseException:
                ssh.close()
                raise
            self._ssh, self.channel = ssh, channel
        return self.channel, None

    def _sftp(self) -> Any:
        if self.channel is None:
            self.connect()
        return self.channel

    def close(self) -> None:
        """Close the SFTP session and the SSH connection (idempotent)."""
        channel, ssh = self.channel, self._ssh
        self.channel = self._ssh = None
        try:
            if channel is not None:
                channel.close()
        finally:
            if ssh is not None:
                ssh.close()

    def __enter__(self) -> SFTPClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- operations ------------------------------------------------------------
    def upload(self, folder: str, filename: str, content: bytes | str | IO[bytes]) -> str:
        """Write ``content`` to ``folder/filename``; return a confirmation message.

        ``content`` may be bytes, text (UTF-8) or a binary file object. The
        remote size is confirmed after writing.
        """
        path = posixpath.join(folder, filename)
        with self._operation("upload", folder, filename) as outcome:
            sftp = self._sftp()
            data = content.encode("utf-8") if isinstance(content, str) else content
            source = io.BytesIO(data) if isinstance(data, bytes) else data
            attrs = sftp.putfo(source, path, confirm=True)
            outcome["bytes"] = int(attrs.st_size) if attrs.st_size is not None else None
        return f"{filename} uploaded successfully to {folder}"

    def download(self, folder: str, filename: str) -> bytes:
        """Return the content of ``folder/filename``."""
        path = posixpath.join(folder, filename)
        with self._operation("download", folder, filename) as outcome:
            buffer = io.BytesIO()
            self._sftp().getfo(path, buffer)
            data = buffer.getvalue()
            outcome["bytes"] = len(data)
        return data

    def listdir(self, folder: str = ".") -> list[str]:
        """Names of the entries of ``folder``."""
        with self._operation("listdir", folder, None) as outcome:
            names: list[str] = list(self._sftp().listdir(folder))
            outcome["entries"] = len(names)
        return names

    def is_valid_path(self, folder: str) -> tuple[bool, str | None]:
        """``(True, None)`` if ``folder`` is a directory, else ``(False, reason)``.

        Kept from earlier releases, with their return shape: it reports rather
        than raises (the ``stat`` event still records the error), and does not
        connect.
        """
        if self.channel is None:
            return False, "Connection not established"
        try:
            with self._operation("stat", folder, None) as outcome:
                attrs = self.channel.stat(folder)
                outcome["is_dir"] = stat.S_ISDIR(attrs.st_mode or 0)
        except OSError as exc:
            return False, f"Folder({folder}) not found: {exc}"
        if not outcome["is_dir"]:
            return False, f"{folder} is not a folder."
        return True, None

    @contextmanager
    def _operation(
        self, operation: str, folder: str | None, filename: str | None
    ) -> Iterator[dict[str, Any]]:
        settings = self.audit_settings or current_settings()
        audit = False
        ctx: dict[str, Any] = {}
        try:
            audit = is_auditing(settings)
            ctx = context_fields() if audit else {}
        except Exception:
            _diagnostic.exception("outbound SFTP auditing failed before the call")
        outcome: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            yield outcome
        except Exception as exc:
            if audit:
                self._record(ctx, operation, folder, filename, outcome, exc, started)
            raise
        if audit:
            self._record(ctx, operation, folder, filename, outcome, None, started)

    def _record(
        self,
        ctx: dict[str, Any],
        operation: str,
        folder: str | None,
        filename: str | None,
        outcome: dict[str, Any],
        error: BaseException | None,
        started: float,
    ) -> None:
        try:
            request_repr = {
                "host": self.host,
                "port": self.port,
                "username": self.username,
                "operation": operation,
                "remote_path": folder,
                "filename": filename,
            }
            secrets = [self.password] if self.password else []
            response_repr = {"success": error is None, **outcome}
            message = error_message(error, secrets) if error is not None else None
            emit_event(build_event(self.service_name, PROTOCOL_SFTP, ctx, request_repr,
                               response_repr, message, time.perf_counter() - started))
        except Exception:
            _diagnostic.exception("could not record SFTP %s on %s", operation, self.service_name)
