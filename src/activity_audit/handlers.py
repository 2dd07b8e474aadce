"""Logging handlers (core: no Django imports).

Provisional: a rotating file handler that creates its directory and defaults to
the audit JSON formatter. Replaced by the multi-process-safe handler (issue 4).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from typing import Any

from activity_audit.formatters import AuditFormatter

__all__ = ["AuditFileHandler"]


class AuditFileHandler(logging.handlers.RotatingFileHandler):
    """Size-rotating JSON-lines file handler that creates its directory."""

    def __init__(self, filename: str, mode: str = "a", maxBytes: int = 0,
                 backupCount: int = 0, encoding: str | None = "utf-8",
                 delay: bool = True, **kwargs: Any) -> None:
        directory = os.path.dirname(os.path.abspath(filename))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            sys.stderr.write(f"activity_audit: cannot create log directory {directory}: {exc}\n")
        super().__init__(filename, mode, maxBytes, backupCount, encoding, delay, **kwargs)
        self.setFormatter(AuditFormatter())
