"""Channel names, event types and record keys, declared once.

Formatters, emitters and tests import these names; nothing else spells them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from activity_audit.levels import API, AUDIT, LOGIN

# Logger names (channels).
MODEL_LOGGER: Final = "audit.model"
REQUEST_LOGGER: Final = "audit.request"
LOGIN_LOGGER: Final = "audit.login"
#: Diagnostics about auditing itself (errors inside capture, dropped events).
DIAGNOSTIC_LOGGER: Final = "activity_audit"

CHANNEL_LEVELS: Final[dict[str, int]] = {
    MODEL_LOGGER: AUDIT,
    REQUEST_LOGGER: API,
    LOGIN_LOGGER: LOGIN,
}


class EventType(StrEnum):
    """``event_type`` of a model event."""

    CREATE = "CREATE"
    READ = "READ"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    BULK_CREATE = "BULK_CREATE"
    BULK_UPDATE = "BULK_UPDATE"
    BULK_DELETE = "BULK_DELETE"
    M2M_ADD = "M2M_ADD"
    M2M_REMOVE = "M2M_REMOVE"
    M2M_CLEAR = "M2M_CLEAR"


class LoginEventType(StrEnum):
    """``event_type`` of an authentication event."""

    LOGIN = "LOGIN"
    LOGOUT = "LOGOUT"
    LOGIN_FAILED = "LOGIN_FAILED"


class RequestType(StrEnum):
    INTERNAL = "internal"
    EXTERNAL = "external"


# Messages of the published shape.
INTERNAL_REQUEST_MESSAGE: Final = "Audit Internal Request"
EXTERNAL_REQUEST_MESSAGE: Final = "Audit External Service"

#: Keys every audit line starts with, built from the ``LogRecord`` itself.
BASE_KEYS: Final = ("timestamp", "level", "name", "message")

#: Keys carried by the actor/context on every event.
CONTEXT_KEYS: Final = ("user_id", "user_info", "request_id", "service_name")

#: Keys only some model events have, in schema order.
MODEL_OPTIONAL_KEYS: Final = (
    # M2M_*: the relation, the other side's model label, its primary keys.
    "field",
    "related_model",
    "related_ids",
    # BULK_* and READ: rows affected or instances loaded, fields written,
    # primary keys (capped at AUDIT_READ_MAX_IDS) and how many there were,
    # and for QuerySet.update() the filter as {"sql", "params"}.
    "count",
    "fields",
    "instance_ids",
    "ids_total",
    "query",
)

MODEL_KEYS: Final = (
    "model",
    "app_label",
    "event_type",
    "instance_id",
    "instance_repr",
    "changes",
    *MODEL_OPTIONAL_KEYS,
    *CONTEXT_KEYS,
    "trace_id",
    "extra",
)

REQUEST_KEYS: Final = (
    "service_name",
    "request_type",
    "protocol",
    "user_id",
    "user_info",
    "request_repr",
    "response_repr",
    "error_message",
    "execution_time",
    "request_id",
    "trace_id",
    "extra",
)

LOGIN_KEYS: Final = (
    "event_type",
    "success",
    "user_id",
    "user_info",
    "username",
    "client_ip",
    "user_agent",
    "request_id",
    "service_name",
    "trace_id",
    "extra",
)

#: Keys a tamper-evident chain adds to a line (see :mod:`activity_audit.integrity`).
INTEGRITY_KEYS: Final = ("chain_id", "seq", "mac")

CHANNEL_KEYS: Final[dict[str, tuple[str, ...]]] = {
    MODEL_LOGGER: MODEL_KEYS,
    REQUEST_LOGGER: REQUEST_KEYS,
    LOGIN_LOGGER: LOGIN_KEYS,
}

#: Every event key of every channel, for formatters that do not know the channel.
EVENT_KEYS: Final = frozenset(MODEL_KEYS) | frozenset(REQUEST_KEYS) | frozenset(LOGIN_KEYS)

#: The fixed substitute for a redacted or masked value.
REDACTED: Final = "[REDACTED]"
