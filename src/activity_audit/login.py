"""Authentication events (``audit.login``). Provisional."""

from __future__ import annotations


def connect() -> None:
    """Connect receivers for Django's auth signals."""
