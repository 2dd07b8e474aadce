"""The published record shapes, spelled out here independently of schema.py.

Keys may be added to a record, never removed or renamed: these lists are the
published contract (DESIGN.md), so deleting a key from schema.py fails here.
"""

from __future__ import annotations

import json
import logging

import pytest

from activity_audit.formatters import AuditFormatter
from activity_audit.schema import CHANNEL_KEYS, CHANNEL_LEVELS

PUBLISHED = {
    "audit.model": [
        "timestamp", "level", "name", "message", "model", "event_type", "instance_id",
        "instance_repr", "changes", "user_id", "user_info", "request_id", "service_name",
        "extra",
    ],
    "audit.request": [
        "timestamp", "level", "name", "message", "service_name", "request_type", "protocol",
        "user_id", "user_info", "request_repr", "response_repr", "error_message",
        "execution_time", "request_id",
    ],
    "audit.login": [
        "timestamp", "level", "name", "message", "event_type", "success", "user_id",
        "user_info", "username", "client_ip", "user_agent", "request_id", "service_name",
    ],
}


@pytest.mark.parametrize("channel", sorted(PUBLISHED))
def test_every_published_key_is_written(channel: str) -> None:
    attrs = {key: f"v-{key}" for key in CHANNEL_KEYS[channel]}
    record = logging.makeLogRecord({
        "name": channel, "levelno": CHANNEL_LEVELS[channel],
        "levelname": logging.getLevelName(CHANNEL_LEVELS[channel]), "msg": "m", **attrs,
    })
    line = json.loads(AuditFormatter().format(record))
    missing = [key for key in PUBLISHED[channel] if key not in line]
    assert missing == []


def test_no_event_key_is_a_log_record_attribute() -> None:
    # Events are set on records without makeRecord's ``extra`` check (events.py).
    record_attrs = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
    event_keys = {key for keys in CHANNEL_KEYS.values() for key in keys}
    assert event_keys & record_attrs == set()
