"""Receivers of Django's model signals (model auditing). Provisional."""

from __future__ import annotations


def connect() -> None:
    """Connect the model receivers and install the queryset patches."""
