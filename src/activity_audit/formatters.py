"""JSON formatters for the audit channels and for application logs.

Both are plain :class:`logging.Formatter` subclasses, usable from ``dictConfig``
(``{"()": "activity_audit.formatters.AuditFormatter"}``), with hook methods to
override. ``format`` never raises and never loses the record: serialization
falls back value by value (see :mod:`activity_audit._json`).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from activity_audit import _json
from activity_audit.schema import CHANNEL_KEYS, EVENT_KEYS

__all__ = ["AuditFormatter", "JSONFormatter", "audit_line", "format_timestamp"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS: Final = frozenset(
    vars(logging.makeLogRecord({})).keys() | {"message", "asctime", "taskName"}
)


# (second, its "YYYY-MM-DD HH:MM:SS" text): gmtime + strftime cost ~1 us per
# record, and records come in bursts within the same second. One tuple,
# replaced whole, so threads never see a second paired with another's text.
_last_second: tuple[int, str] = (-1, "")
# ".000" to ".999": formatting the milliseconds was half the cost of a timestamp.
_MILLIS: Final = tuple(f".{n:03d}" for n in range(1000))


def format_timestamp(created: float) -> str:
    """``record.created`` as ``"YYYY-MM-DD HH:MM:SS.mmm"`` in UTC (the published shape)."""
    global _last_second
    seconds = int(created)
    cached = _last_second
    if cached[0] == seconds:
        text = cached[1]
    else:
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, text)
    return text + _MILLIS[int((created - seconds) * 1000) % 1000]


def _safe_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        # A bad %-format must not cost the event: keep the raw pieces.
        return f"{record.msg!r} % {record.args!r}"


class _BaseJSONFormatter(logging.Formatter):
    def base_event(self, record: logging.LogRecord) -> dict[str, Any]:
        return {
            "timestamp": format_timestamp(record.created),
            "level": record.levelname,
            "name": record.name,
            "message": _safe_message(record),
        }

    def serialize(self, event: dict[str, Any]) -> str:
        """Hook: turn the event dict into one line (no newline)."""
        return _json.dumps(event).decode("utf-8")

    def add_exception(self, record: logging.LogRecord, event: dict[str, Any]) -> None:
        if record.exc_info:
            try:
                event["exc_info"] = self.formatException(record.exc_info)
            except Exception:
                event["exc_info"] = repr(record.exc_info[1])
        if record.stack_info:
            event["stack_info"] = record.stack_info

    def format(self, record: logging.LogRecord) -> str:
        try:
            return self.serialize(self.format_event(record))
        except Exception:
            return self._last_resort(record).decode("utf-8")

    def format_bytes(self, record: logging.LogRecord) -> bytes:
        """:meth:`format` as UTF-8 bytes (what a file handler writes).

        Skips the str round trip when neither ``format`` nor ``serialize`` is
        overridden; otherwise encodes what they return.
        """
        cls = type(self)
        if cls.format is not _BaseJSONFormatter.format or (
            cls.serialize is not _BaseJSONFormatter.serialize
        ):
            return self.format(record).encode("utf-8", "backslashreplace")
        try:
            return _json.dumps(self.format_event(record))
        except Exception:
            return self._last_resort(record)

    @staticmethod
    def _last_resort(record: logging.LogRecord) -> bytes:
        # The hook methods of a subclass failed: the record's base keys at least.
        return _json.dumps(
            {"timestamp": format_timestamp(record.created), "level": record.levelname,
             "name": record.name, "message": _safe_message(record), "format_error": True}
        )

    def format_event(self, record: logging.LogRecord) -> dict[str, Any]:
        raise NotImplementedError


def _add_event_keys(line: dict[str, Any], channel: str, attrs: dict[str, Any]) -> None:
    """Copy the channel's event keys present in ``attrs`` onto ``line``, in schema order."""
    keys = CHANNEL_KEYS.get(channel)
    if keys is None:
        keys = tuple(k for k in attrs if k in EVENT_KEYS)
    for key in keys:
        if key in attrs:
            line[key] = attrs[key]


#: Per channel, whether events of a key sequence hold only the channel's keys in
#: schema order (then an event is copied onto its line whole). Events come in a
#: handful of shapes (one per event type and context), so this stays small.
_SHAPES: Final[dict[str, dict[tuple[str, ...], bool]]] = {name: {} for name in CHANNEL_KEYS}
_MAX_SHAPES: Final = 256


def _in_schema_order(channel: str, event: dict[str, Any]) -> bool:
    """Whether ``event``'s keys are ``channel``'s event keys, in schema order (memoized)."""
    shapes = _SHAPES.get(channel)
    if shapes is None:
        return False
    shape = tuple(event)
    known = shapes.get(shape)
    if known is not None:
        return known
    position = {key: i for i, key in enumerate(CHANNEL_KEYS[channel])}
    order = [position.get(key, -1) for key in shape]
    ordered = -1 not in order and order == sorted(order)
    if len(shapes) >= _MAX_SHAPES:
        shapes.clear()
    shapes[shape] = ordered
    return ordered


def audit_line(channel: str, levelname: str, message: str, created: float,
               event: dict[str, Any], timestamp: str | None = None) -> bytes:
    """The line :class:`AuditFormatter` makes of the record ``events.emit`` would log.

    For the handlers that take lines without a record (see
    :func:`activity_audit.handlers.direct_handlers`). ``timestamp`` is
    ``format_timestamp(created)`` when the caller has it already (a batch made
    at one moment). Never raises.
    """
    line = {"timestamp": format_timestamp(created) if timestamp is None else timestamp,
            "level": levelname, "name": channel, "message": message}
    if _in_schema_order(channel, event):
        line.update(event)
    else:
        _add_event_keys(line, channel, event)
    return _json.dumps(line)


class AuditFormatter(_BaseJSONFormatter):
    """Formats audit records (``audit.model``, ``audit.request``, ``audit.login``).

    The line holds the base keys, then the channel's event keys from
    :mod:`activity_audit.schema` that are present on the record. Integrity
    keys are never taken from a record (``extra=`` could forge them): the
    handler's chain appends them to the serialized line.
    """

    def format_event(self, record: logging.LogRecord) -> dict[str, Any]:
        event = self.base_event(record)
        _add_event_keys(event, record.name, record.__dict__)
        self.add_exception(record, event)
        return event


class JSONFormatter(_BaseJSONFormatter):
    """Formats any record as JSON: base keys, source location and every ``extra`` key."""

    def format_event(self, record: logging.LogRecord) -> dict[str, Any]:
        event = self.base_event(record)
        event["module"] = record.module
        event["function"] = record.funcName
        event["line"] = record.lineno
        event["process"] = record.process
        event["thread"] = record.threadName
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in event:
                event[key] = value
        self.add_exception(record, event)
        return event
