"""W3C traceparent parsing and outbound child traceparents."""

from __future__ import annotations

import re

import pytest

from activity_audit.tracing import (
    MAX_TRACEPARENT_LENGTH,
    child_traceparent,
    new_span_id,
    parse_traceparent,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
PARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"


@pytest.mark.parametrize(
    "header",
    [
        PARENT,
        f"  {PARENT}\t",
        # A later version may carry more fields; they are ignored.
        f"01-{TRACE_ID}-{SPAN_ID}-01-what-comes-next",
        f"cc-{TRACE_ID}-{SPAN_ID}-01",
    ],
)
def test_valid(header: str) -> None:
    assert parse_traceparent(header) == (TRACE_ID, SPAN_ID, "01")


def test_flags_are_kept() -> None:
    assert parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-00") == (TRACE_ID, SPAN_ID, "00")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # forbidden version
        f"00-{'0' * 32}-{SPAN_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        PARENT.upper(),  # lowercase hex only
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",
        f"0-{TRACE_ID}-{SPAN_ID}-01",  # version: 2 hex
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",  # trace id: 32 hex
        f"00-{TRACE_ID}-{SPAN_ID}0-01",  # parent id: 16 hex
        f"00-{TRACE_ID}-{SPAN_ID}-1",  # flags: 2 hex
        f"00-{TRACE_ID}-{SPAN_ID}-0g",
        f"00_{TRACE_ID}_{SPAN_ID}_01",
        f"{PARENT}x",
        f"x{PARENT}",
        f"{PARENT}-\nnext",
        f"{PARENT}-" + "x" * MAX_TRACEPARENT_LENGTH,  # over the length bound
    ],
)
def test_invalid(header: str | None) -> None:
    assert parse_traceparent(header) is None


def test_length_bound_is_inclusive() -> None:
    header = f"01-{TRACE_ID}-{SPAN_ID}-01-"
    header += "x" * (MAX_TRACEPARENT_LENGTH - len(header))
    assert len(header) == MAX_TRACEPARENT_LENGTH
    assert parse_traceparent(header) == (TRACE_ID, SPAN_ID, "01")
    assert parse_traceparent(header + "x") is None


def test_child_keeps_trace_and_flags_with_a_new_span() -> None:
    children = {child_traceparent(f"  {PARENT} ") for _ in range(20)}
    assert len(children) == 20
    for child in children:
        assert child is not None
        version, trace_id, span, flags = child.split("-")
        assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
        assert span != SPAN_ID
        assert parse_traceparent(child) == (TRACE_ID, span, "01")


def test_child_of_a_later_version_is_version_00() -> None:
    child = child_traceparent(f"cc-{TRACE_ID}-{SPAN_ID}-03-extra")
    assert child is not None
    assert re.fullmatch(rf"00-{TRACE_ID}-[0-9a-f]{{16}}-03", child)


@pytest.mark.parametrize("header", [None, "", "garbage", f"ff-{TRACE_ID}-{SPAN_ID}-01"])
def test_no_child_of_an_invalid_traceparent(header: str | None) -> None:
    assert child_traceparent(header) is None


def test_new_span_id_is_16_hex_not_zero() -> None:
    spans = {new_span_id() for _ in range(50)}
    assert len(spans) == 50
    assert all(re.fullmatch(r"[0-9a-f]{16}", s) and s != "0" * 16 for s in spans)
