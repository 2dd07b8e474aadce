"""Audit log levels.

Importing this module registers the level names with :mod:`logging` -- the one
import side effect in the package -- so ``"level": "AUDIT"`` works in a
``LOGGING`` dict and ``logging.getLevelName("AUDIT") == 21``.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["API", "AUDIT", "LOGIN"]

#: Model events (logger ``audit.model``).
AUDIT = 21
#: Request/response and outbound-call events (logger ``audit.request``).
API = 22
#: Authentication events (logger ``audit.login``).
LOGIN = 23


def _make_method(level: int) -> Any:
    def log_at_level(self: logging.Logger, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            # Skip this wrapper so funcName/lineno name the caller.
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self._log(level, msg, args, **kwargs)

    return log_at_level


for _name, _level in (("AUDIT", AUDIT), ("API", API), ("LOGIN", LOGIN)):
    logging.addLevelName(_level, _name)
    # Another library may already own the attribute; never replace it.
    if not hasattr(logging.Logger, _name.lower()):
        setattr(logging.Logger, _name.lower(), _make_method(_level))
