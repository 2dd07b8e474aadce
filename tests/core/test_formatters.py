from __future__ import annotations

import json
import logging
from decimal import Decimal

from activity_audit.formatters import AuditFormatter, JSONFormatter, format_timestamp
from activity_audit.levels import AUDIT
from activity_audit.schema import BASE_KEYS, MODEL_KEYS

# 2025-08-16 17:06:32.403 UTC
CREATED = 1755363992.403


def make_record(**attrs: object) -> logging.LogRecord:
    base: dict[str, object] = {
        "name": "audit.model",
        "levelno": AUDIT,
        "levelname": "AUDIT",
        "msg": "CREATE event for Patient (id: 1)",
        "created": CREATED,
    }
    base.update(attrs)
    return logging.makeLogRecord(base)


def test_timestamp_is_utc_with_milliseconds() -> None:
    assert format_timestamp(CREATED) == "2025-08-16 17:06:32.403"


def test_model_record_golden_keys() -> None:
    event = {key: None for key in MODEL_KEYS}
    event.update(event_type="CREATE", model="Patient", instance_id="1", changes={}, extra={})
    line = AuditFormatter().format(make_record(**event))
    data = json.loads(line)
    assert list(data) == [*BASE_KEYS, *MODEL_KEYS]
    assert data["timestamp"] == "2025-08-16 17:06:32.403"
    assert data["level"] == "AUDIT"
    assert data["message"] == "CREATE event for Patient (id: 1)"


def test_audit_formatter_writes_only_declared_keys() -> None:
    record = make_record(event_type="CREATE", unrelated="x", request_id="r1")
    data = json.loads(AuditFormatter().format(record))
    assert "unrelated" not in data
    assert data["request_id"] == "r1"


def test_bad_message_args_do_not_lose_the_record() -> None:
    record = make_record(msg="%d items", args=("many",), event_type="CREATE")
    data = json.loads(AuditFormatter().format(record))
    assert data["event_type"] == "CREATE"
    assert "%d items" in data["message"]


def test_json_formatter_includes_extra_and_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = make_record(name="app", levelname="ERROR", levelno=40, msg="failed",
                             exc_info=sys.exc_info(), amount=Decimal("1.10"))
    data = json.loads(JSONFormatter().format(record))
    assert data["amount"] == "1.10"
    assert data["message"] == "failed"
    assert "ValueError: boom" in data["exc_info"]
    assert {"module", "function", "line", "process", "thread"} <= set(data)


def test_formatter_hook_failure_falls_back() -> None:
    class Broken(AuditFormatter):
        def format_event(self, record: logging.LogRecord) -> dict[str, object]:
            raise RuntimeError("hook bug")

    data = json.loads(Broken().format(make_record()))
    assert data["format_error"] is True
    assert data["message"] == "CREATE event for Patient (id: 1)"


def test_integrity_keys_cannot_be_forged_through_extra() -> None:
    record = make_record(event_type="CREATE", chain_id="forged", seq=1, mac="00")
    data = json.loads(AuditFormatter().format(record))
    assert not {"chain_id", "seq", "mac"} & set(data)


def test_format_bytes_is_format_encoded() -> None:
    record = make_record(
        model="Patient", instance_repr={"name": "Zoë \u2028", "n": Decimal("1.50")}
    )
    for formatter in (AuditFormatter(), JSONFormatter()):
        assert formatter.format_bytes(record) == formatter.format(record).encode("utf-8")


def test_format_bytes_keeps_overridden_hooks() -> None:
    class Upper(AuditFormatter):
        def serialize(self, event: dict[str, object]) -> str:
            return super().serialize(event).upper()

    record = make_record(model="Patient")
    assert Upper().format_bytes(record) == Upper().format(record).encode("utf-8")
    assert b'"MODEL":"PATIENT"' in Upper().format_bytes(record)


def test_audit_line_is_the_formatter_line_whatever_the_key_order() -> None:
    from activity_audit.formatters import audit_line

    in_order = {"model": "Patient", "event_type": "UPDATE", "instance_id": "1",
                "changes": {}, "user_id": None, "request_id": "r", "service_name": "s"}
    shuffled = dict(reversed(list(in_order.items())))
    foreign = {**in_order, "not_a_schema_key": "dropped", "message": "not the message"}
    for event in (in_order, shuffled, foreign, in_order, shuffled):
        line = audit_line("audit.model", "AUDIT", "msg", CREATED, event)
        record = make_record(msg="msg", **{k: v for k, v in event.items() if k != "message"})
        assert line.decode() == AuditFormatter().format(record)
        assert list(json.loads(line)) == [*BASE_KEYS, *in_order]
