"""django-activity-audit: audit trails in the logging layer.

``from activity_audit import *`` brings the levels and the ``LOGGING`` helpers
into a settings module, as the published setup does.
"""

from __future__ import annotations

from activity_audit.context import audit_context
from activity_audit.levels import API, AUDIT, LOGIN
from activity_audit.logconfig import (
    get_api_file_handler,
    get_api_handler,
    get_async_api_handler,
    get_async_audit_handler,
    get_async_json_handler,
    get_async_login_handler,
    get_async_stdout_handler,
    get_audit_formatter,
    get_audit_handler,
    get_console_formatter,
    get_json_formatter,
    get_json_handler,
    get_login_handler,
    get_stdout_handler,
)

__version__ = "1.0.0"

__all__ = [
    "API",
    "AUDIT",
    "LOGIN",
    "audit_context",
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
