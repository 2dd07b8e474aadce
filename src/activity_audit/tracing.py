"""W3C Trace Context: reading an incoming ``traceparent`` and deriving outbound ones.

Core module: no Django import. One parser for the whole package, so the
middleware (incoming) and the clients (outbound) accept the same headers.

    00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
    ^^ version  ^^^^ trace id (32 hex)  ^^^ parent id    ^^ flags
"""

from __future__ import annotations

import os
import re
from typing import Final

__all__ = ["MAX_TRACEPARENT_LENGTH", "child_traceparent", "new_span_id", "parse_traceparent"]

#: Longer headers are rejected unparsed (the header is client-controlled).
MAX_TRACEPARENT_LENGTH: Final = 512

# Lowercase hex only, as the specification requires. Later versions may append
# fields after the flags ("-..."), which are ignored.
_TRACEPARENT_RE: Final = re.compile(
    r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?"
)
_ZERO_TRACE_ID: Final = "0" * 32
_ZERO_SPAN_ID: Final = "0" * 16


def parse_traceparent(header: str | None) -> tuple[str, str, str] | None:
    """The ``(trace_id, parent_id, flags)`` of a valid ``traceparent``, else ``None``.

    Surrounding whitespace is ignored. Rejected: headers over
    :data:`MAX_TRACEPARENT_LENGTH` characters, version ``ff``, uppercase hex,
    an all-zero trace id or parent id, and anything not of the form
    ``vv-<32 hex>-<16 hex>-ff[-...]``.

    Never raises.
    """
    if not isinstance(header, str) or not header or len(header) > MAX_TRACEPARENT_LENGTH:
        return None
    match = _TRACEPARENT_RE.fullmatch(header.strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE_ID or parent_id == _ZERO_SPAN_ID:
        return None
    return trace_id, parent_id, flags


def new_span_id() -> str:
    """A random 16-hex span id (never the invalid all-zero id)."""
    span = os.urandom(8).hex()
    while span == _ZERO_SPAN_ID:
        span = os.urandom(8).hex()
    return span


def child_traceparent(traceparent: str | None) -> str | None:
    """A version-00 ``traceparent`` for a call made on behalf of ``traceparent``.

    Same trace id and flags, a new random span id; ``None`` when
    ``traceparent`` is not valid (see :func:`parse_traceparent`).
    """
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    trace_id, _parent_id, flags = parsed
    return f"00-{trace_id}-{new_span_id()}-{flags}"
