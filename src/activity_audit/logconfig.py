"""Helpers returning plain ``dictConfig`` dicts for the ``LOGGING`` setting.

They run while settings.py is imported, before Django is configured, so they
take parameters (the log directory defaults to ``$AUDIT_LOG_DIR`` or
``logs``), not Django settings. Every dict is plain data: override any key
(``filename``, ``maxBytes``, ``backupCount``, ``compress``, ``when``,
``integrity_key`` …) by passing it as a keyword argument or editing the dict.

File handlers use :class:`activity_audit.handlers.AuditFileHandler` (safe for
several worker processes sharing a file); the ``get_async_*`` variants put it
behind a queue and a writer thread so the calling thread never waits on disk.
"""

from __future__ import annotations

import os
from typing import Any, Final

__all__ = [
    "get_api_file_handler",
    "get_api_handler",
    "get_async_api_handler",
    "get_async_audit_handler",
    "get_async_json_handler",
    "get_async_login_handler",
    "get_async_stdout_handler",
    "get_audit_formatter",
    "get_audit_handler",
    "get_console_formatter",
    "get_json_formatter",
    "get_json_handler",
    "get_login_handler",
    "get_stdout_handler",
]

DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
DEFAULT_BACKUP_COUNT: Final = 10

_FILE_HANDLER: Final = "activity_audit.handlers.AuditFileHandler"
_STREAM_HANDLER: Final = "activity_audit.handlers.AuditStreamHandler"
_ASYNC_FILE_FACTORY: Final = "activity_audit.handlers.async_file_handler"
_ASYNC_STREAM_FACTORY: Final = "activity_audit.handlers.async_stream_handler"


def _log_dir(log_dir: str | os.PathLike[str] | None) -> str:
    return os.fspath(log_dir) if log_dir is not None else os.environ.get("AUDIT_LOG_DIR", "logs")


def get_json_formatter(**kwargs: Any) -> dict[str, Any]:
    """Formatter dict for JSON application logs."""
    return {"()": "activity_audit.formatters.JSONFormatter", **kwargs}


def get_audit_formatter(**kwargs: Any) -> dict[str, Any]:
    """Formatter dict for audit channel lines (the audit handlers' default)."""
    return {"()": "activity_audit.formatters.AuditFormatter", **kwargs}


def get_console_formatter(**kwargs: Any) -> dict[str, Any]:
    """Formatter dict for human-readable console lines."""
    return {
        "format": "{asctime} {levelname:<7} {name}: {message}",
        "style": "{",
        **kwargs,
    }


def _handler(target: dict[str, Any], level: str, formatter: str | None,
             overrides: dict[str, Any]) -> dict[str, Any]:
    handler: dict[str, Any] = {**target, "level": level}
    if formatter is not None:
        handler["formatter"] = formatter
    handler.update(overrides)
    return handler


def _file(filename: str, log_dir: Any, *, factory: bool) -> dict[str, Any]:
    key = "()" if factory else "class"
    return {
        key: _ASYNC_FILE_FACTORY if factory else _FILE_HANDLER,
        "filename": os.path.join(_log_dir(log_dir), filename),
        "maxBytes": DEFAULT_MAX_BYTES,
        "backupCount": DEFAULT_BACKUP_COUNT,
    }


# -- synchronous file handlers (the published setup) ------------------------------------------


def get_json_handler(level: str = "DEBUG", formatter: str | None = "json", *,
                     log_dir: Any = None, **overrides: Any) -> dict[str, Any]:
    """Rotating JSON file handler for application logs (``logs/app.log``)."""
    return _handler(_file("app.log", log_dir, factory=False), level, formatter, overrides)


def get_api_file_handler(level: str = "API", formatter: str | None = None, *,
                         log_dir: Any = None, **overrides: Any) -> dict[str, Any]:
    """Rotating file handler for ``audit.request`` (``logs/api.log``)."""
    return _handler(_file("api.log", log_dir, factory=False), level, formatter, overrides)


def get_audit_handler(level: str = "AUDIT", formatter: str | None = None, *,
                      log_dir: Any = None, **overrides: Any) -> dict[str, Any]:
    """Rotating file handler for ``audit.model`` (``logs/audit.log``)."""
    return _handler(_file("audit.log", log_dir, factory=False), level, formatter, overrides)


def get_login_handler(level: str = "LOGIN", formatter: str | None = None, *,
                      log_dir: Any = None, **overrides: Any) -> dict[str, Any]:
    """Rotating file handler for ``audit.login`` (``logs/login.log``)."""
    return _handler(_file("login.log", log_dir, factory=False), level, formatter, overrides)


#: Name used by earlier releases.
get_api_handler = get_api_file_handler


def get_stdout_handler(level: str = "DEBUG", formatter: str | None = None,
                       **overrides: Any) -> dict[str, Any]:
    """JSON lines on standard output (containers), one per line, flushed."""
    return _handler({"class": _STREAM_HANDLER}, level, formatter, overrides)


# -- non-blocking variants -------------------------------------------------------------------


def get_async_json_handler(level: str = "DEBUG", formatter: str | None = "json", *,
                           log_dir: Any = None, **overrides: Any) -> dict[str, Any]:
    """:func:`get_json_handler` behind a queue (formatting stays in the caller's thread)."""
    return _handler(_file("app.log", log_dir, factory=True), level, formatter, overrides)


def get_async_api_handler(level: str = "API", formatter: str | None = None, *,
                          log_dir: Any = None, **overrides: Any) -> dict[str, Any]:
    """:func:`get_api_file_handler` behind a queue."""
    return _handler(_file("api.log", log_dir, factory=True), level, formatter, overrides)


def get_async_audit_handler(level: str = "AUDIT", formatter: str | None = None, *,
                            log_dir: Any = None, **overrides: Any) -> dict[str, Any]:
    """:func:`get_audit_handler` behind a queue."""
    return _handler(_file("audit.log", log_dir, factory=True), level, formatter, overrides)


def get_async_login_handler(level: str = "LOGIN", formatter: str | None = None, *,
                            log_dir: Any = None, **overrides: Any) -> dict[str, Any]:
    """:func:`get_login_handler` behind a queue."""
    return _handler(_file("login.log", log_dir, factory=True), level, formatter, overrides)


def get_async_stdout_handler(level: str = "DEBUG", formatter: str | None = None,
                             **overrides: Any) -> dict[str, Any]:
    """:func:`get_stdout_handler` behind a queue."""
    return _handler({"()": _ASYNC_STREAM_FACTORY}, level, formatter, overrides)
