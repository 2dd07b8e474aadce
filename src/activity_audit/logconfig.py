"""Helpers returning plain ``dictConfig`` dicts for the ``LOGGING`` setting.

They run while settings.py is imported, before Django is configured, so they
take parameters (with environment-variable defaults), not Django settings.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "get_api_file_handler",
    "get_api_handler",
    "get_audit_handler",
    "get_console_formatter",
    "get_json_formatter",
    "get_json_handler",
    "get_login_handler",
]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUP_COUNT = 10


def _log_dir(log_dir: str | os.PathLike[str] | None) -> str:
    return os.fspath(log_dir) if log_dir is not None else os.environ.get("AUDIT_LOG_DIR", "logs")


def get_json_formatter(**kwargs: Any) -> dict[str, Any]:
    """Formatter dict for JSON application logs."""
    return {"()": "activity_audit.formatters.JSONFormatter", **kwargs}


def get_audit_formatter(**kwargs: Any) -> dict[str, Any]:
    """Formatter dict for audit channel lines."""
    return {"()": "activity_audit.formatters.AuditFormatter", **kwargs}


def get_console_formatter(**kwargs: Any) -> dict[str, Any]:
    """Formatter dict for human-readable console lines."""
    return {
        "format": "{asctime} {levelname:<7} {name}: {message}",
        "style": "{",
        **kwargs,
    }


def _file_handler(filename: str, level: str, formatter: str | None, log_dir: Any,
                  **overrides: Any) -> dict[str, Any]:
    handler: dict[str, Any] = {
        "class": "activity_audit.handlers.AuditFileHandler",
        "level": level,
        "filename": os.path.join(_log_dir(log_dir), filename),
        "maxBytes": DEFAULT_MAX_BYTES,
        "backupCount": DEFAULT_BACKUP_COUNT,
    }
    if formatter is not None:
        handler["formatter"] = formatter
    handler.update(overrides)
    return handler


def get_json_handler(level: str = "DEBUG", formatter: str | None = "json", *,
                     log_dir: Any = None, **overrides: Any) -> dict[str, Any]:
    return _file_handler("app.log", level, formatter, log_dir, **overrides)


def get_api_file_handler(level: str = "API", formatter: str | None = None, *,
                         log_dir: Any = None, **overrides: Any) -> dict[str, Any]:
    return _file_handler("api.log", level, formatter, log_dir, **overrides)


def get_audit_handler(level: str = "AUDIT", formatter: str | None = None, *,
                      log_dir: Any = None, **overrides: Any) -> dict[str, Any]:
    return _file_handler("audit.log", level, formatter, log_dir, **overrides)


def get_login_handler(level: str = "LOGIN", formatter: str | None = None, *,
                      log_dir: Any = None, **overrides: Any) -> dict[str, Any]:
    return _file_handler("login.log", level, formatter, log_dir, **overrides)


#: Name used by earlier releases.
get_api_handler = get_api_file_handler
