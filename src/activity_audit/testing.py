"""Test helpers shipped to users: capture audit events as dicts.

::

    from activity_audit.testing import capture_events

    def test_patient_created():
        with capture_events() as events:
            Patient.objects.create(name="Ada")
        assert events[0]["event_type"] == "CREATE"
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from activity_audit.formatters import AuditFormatter
from activity_audit.schema import CHANNEL_LEVELS

__all__ = ["EventCaptureHandler", "capture_events"]


class EventCaptureHandler(logging.Handler):
    """Keeps each record as the dict the audit formatter would write (and the record)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.events: list[dict[str, Any]] = []
        self.records: list[logging.LogRecord] = []
        self._formatter = AuditFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.events.append(self._formatter.format_event(record))


@contextmanager
def capture_events(*channels: str) -> Iterator[list[dict[str, Any]]]:
    """Collect the events logged on ``channels`` (default: all three) in the block.

    Each logger is enabled at its audit level for the block and restored after.
    """
    names = channels or tuple(CHANNEL_LEVELS)
    handler = EventCaptureHandler()
    saved: list[tuple[logging.Logger, int, bool]] = []
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.disabled))
        logger.addHandler(handler)
        level = CHANNEL_LEVELS.get(name, logging.DEBUG)
        if not logger.isEnabledFor(level):
            logger.setLevel(level)
        logger.disabled = False
    try:
        yield handler.events
    finally:
        for logger, level, disabled in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.disabled = disabled
