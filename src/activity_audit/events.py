"""Emitting events: one call, never raising into the application."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Final

from activity_audit.schema import CHANNEL_LEVELS, DIAGNOSTIC_LOGGER

__all__ = ["emit", "is_enabled"]

_loggers: Final[dict[str, logging.Logger]] = {
    name: logging.getLogger(name) for name in CHANNEL_LEVELS
}
_diagnostic: Final = logging.getLogger(DIAGNOSTIC_LOGGER)


def is_enabled(channel: str) -> bool:
    """Whether an event on ``channel`` would be handled (skip building it if not)."""
    return _loggers[channel].isEnabledFor(CHANNEL_LEVELS[channel])


def emit(channel: str, message: str, event: dict[str, Any]) -> None:
    """Log ``event`` (JSON-native values) on ``channel`` at its level.

    The event's keys become record attributes, so any handler or formatter can
    ship them as they are. Handler failures go through ``Handler.handleError``
    (the stdlib's path); anything else that goes wrong is reported on the
    ``activity_audit`` diagnostic logger, never raised.
    """
    try:
        _loggers[channel].log(CHANNEL_LEVELS[channel], message, extra=event)
    except Exception:
        with contextlib.suppress(Exception):
            _diagnostic.exception("could not emit audit event on %s: %s", channel, message)
