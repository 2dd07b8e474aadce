"""Emitting events: one call, never raising into the application."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any, Final

from activity_audit.formatters import audit_line, format_timestamp
from activity_audit.handlers import coalesced_writes, direct_handlers
from activity_audit.schema import CHANNEL_LEVELS, DIAGNOSTIC_LOGGER

__all__ = ["emit", "emit_many", "is_enabled"]

_loggers: Final[dict[str, logging.Logger]] = {
    name: logging.getLogger(name) for name in CHANNEL_LEVELS
}
_diagnostic: Final = logging.getLogger(DIAGNOSTIC_LOGGER)
# What the stdlib puts on a record whose caller it did not look up.
_SOURCE_FILE: Final = "(unknown file)"
_SOURCE_FUNC: Final = "(unknown function)"


def is_enabled(channel: str) -> bool:
    """Whether an event on ``channel`` would be handled (skip building it if not)."""
    return _loggers[channel].isEnabledFor(CHANNEL_LEVELS[channel])


def _make_record(logger: logging.Logger, level: int, message: str) -> logging.LogRecord:
    """What ``Logger.log`` builds, minus ``findCaller`` and the ``extra`` check.

    The caller of an audit event is always our own code, and walking the stack
    cost ~3 us per event (a third of the logging overhead before the handler).
    The event's keys are set on the record afterwards rather than passed as
    ``extra``, whose check against overwriting record attributes is a loop per
    key: they are the schema's keys, none of which is a LogRecord attribute.
    ``makeRecord`` (the record factory) and ``handle`` (disabled, filters,
    propagation) are the logger's own.
    """
    return logger.makeRecord(logger.name, level, _SOURCE_FILE, 0, message, (), None, _SOURCE_FUNC)


class _RecordMaker:
    """Builds the record of an event handed to a handler as a line, if a failure needs it."""

    __slots__ = ("event", "level", "logger", "message")

    def __init__(self, logger: logging.Logger, level: int, message: str,
                 event: dict[str, Any]) -> None:
        self.logger = logger
        self.level = level
        self.message = message
        self.event = event

    def __call__(self) -> logging.LogRecord:
        record = _make_record(self.logger, self.level, self.message)
        record.__dict__.update(self.event)
        return record


def emit(channel: str, message: str, event: dict[str, Any]) -> None:
    """Log ``event`` (JSON-native values) on ``channel`` at its level.

    The event's keys become record attributes, so any handler or formatter can
    ship them as they are. Where no one could see the record -- only this
    package's file and stream handlers, unfiltered, with their own formatter
    (:func:`~activity_audit.handlers.direct_handlers`) -- they are handed the
    line instead, which is the same line for a fraction of the cost. Handler
    failures go through ``Handler.handleError`` (the stdlib's path); anything
    else that goes wrong is reported on the ``activity_audit`` diagnostic
    logger, never raised.
    """
    try:
        logger = _loggers[channel]
        level = CHANNEL_LEVELS[channel]
        if not logger.isEnabledFor(level):
            return
        targets = direct_handlers(logger, level)
        if targets is not None:
            line = [audit_line(channel, logging.getLevelName(level), message, time.time(), event)]
            maker = _RecordMaker(logger, level, message, event)
            for handler in targets:
                handler.write_lines(line, maker, level)
            return
        record = _make_record(logger, level, message)
        record.__dict__.update(event)
        logger.handle(record)
    except Exception:
        with contextlib.suppress(Exception):
            _diagnostic.exception("could not emit audit event on %s: %s", channel, message)


def emit_many(channel: str, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """:func:`emit` each ``(message, event)`` at once; this module's handlers write them together.

    For the model events of one commit. Every record goes through the logger as
    :func:`emit` sends it; a file or stream handler of
    :mod:`activity_audit.handlers` writes the lines in one ``write()`` after the
    last one (see :func:`~activity_audit.handlers.coalesced_writes`). With the
    stdlib's logger and record classes, the records after the first are copies of
    it with their own message and event: the same thread, process and moment,
    without building each one anew.
    """
    try:
        logger = _loggers[channel]
        level = CHANNEL_LEVELS[channel]
        if not logger.isEnabledFor(level):
            return
        targets = direct_handlers(logger, level)
        if targets is not None:
            levelname = logging.getLevelName(level)
            now = time.time()
            stamp = format_timestamp(now)
            # Each event becomes its line as it comes: ``items`` may build them
            # one by one, and only the first is kept (for a failure's record).
            first: tuple[str, dict[str, Any]] | None = None
            lines: list[bytes] = []
            for message, event in items:
                if first is None:
                    first = (message, event)
                lines.append(audit_line(channel, levelname, message, now, event, stamp))
            if first is not None:
                maker = _RecordMaker(logger, level, *first)
                for handler in targets:
                    handler.write_lines(lines, maker, level)
            return
        copyable = (
            logging.getLogRecordFactory() is logging.LogRecord
            and type(logger).makeRecord is logging.Logger.makeRecord
        )
        template: dict[str, Any] | None = None
        with coalesced_writes():
            for message, event in items:
                try:
                    if template is None:
                        record = _make_record(logger, level, message)
                        if copyable:
                            template = record.__dict__.copy()
                    else:
                        record = logging.LogRecord.__new__(logging.LogRecord)
                        attrs = template.copy()
                        attrs["msg"] = message
                        record.__dict__ = attrs
                    record.__dict__.update(event)
                    logger.handle(record)
                except Exception:
                    with contextlib.suppress(Exception):
                        _diagnostic.exception(
                            "could not emit audit event on %s: %s", channel, message)
    except Exception:
        with contextlib.suppress(Exception):
            _diagnostic.exception("could not emit audit events on %s", channel)
