"""Model events are emitted when the transaction commits, and never for rolled-back writes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from activity_audit.context import audit_context
from activity_audit.schema import MODEL_LOGGER
from activity_audit.testing import capture_events
from tests.testapp.models import Clinic, Tag


class Boom(Exception):
    pass


@pytest.mark.django_db
def test_savepoint_rollback_discards_its_events(django_capture_on_commit_callbacks: Any) -> None:
    with capture_events(MODEL_LOGGER) as events, django_capture_on_commit_callbacks(execute=True):
        Clinic.objects.create(name="kept")
        with contextlib.suppress(Boom), transaction.atomic():
            Clinic.objects.create(name="rolled back")
            Clinic.objects.filter(name="kept").update(name="never")
            raise Boom
        Tag.objects.create(name="after")
    assert [(e["model"], e["event_type"]) for e in events] == [
        ("Clinic", "CREATE"), ("Tag", "CREATE"),
    ]


@pytest.mark.django_db
def test_failed_statement_in_savepoint_emits_nothing(
    django_capture_on_commit_callbacks: Any,
) -> None:
    Tag.objects.create(name="unique")

    def write_then_fail() -> None:
        with transaction.atomic():
            Clinic.objects.create(name="in the failed block")
            Tag.objects.create(name="unique")

    with (
        capture_events(MODEL_LOGGER) as events,
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(IntegrityError),
    ):
        write_then_fail()
    assert events == []


@pytest.mark.django_db(transaction=True)
def test_emitted_at_commit_not_before() -> None:
    with capture_events(MODEL_LOGGER) as events:
        with transaction.atomic():
            clinic = Clinic.objects.create(name="a")
            clinic.name = "b"
            clinic.save()
            assert events == []
        assert [e["event_type"] for e in events] == ["CREATE", "UPDATE"]
        # Autocommit: at once.
        Clinic.objects.create(name="c")
        assert len(events) == 3


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_emits_nothing() -> None:
    def write_then_fail() -> None:
        with transaction.atomic():
            Clinic.objects.create(name="a")
            Clinic.objects.bulk_create([Clinic(name="b")])
            Clinic.objects.update(name="c")
            raise Boom

    with capture_events(MODEL_LOGGER) as events, pytest.raises(Boom):
        write_then_fail()
    assert events == []
    assert not Clinic.objects.exists()


class _FailOnce(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.failed:
            self.failed = True
            raise RuntimeError("first delivery fails")
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() decides
        pass


@pytest.mark.django_db(transaction=True)
def test_one_failing_event_does_not_stop_the_others() -> None:
    logger = logging.getLogger(MODEL_LOGGER)
    failing = _FailOnce()
    logger.addHandler(failing)
    try:
        with capture_events(MODEL_LOGGER) as events, transaction.atomic():
            Clinic.objects.create(name="a")
            Clinic.objects.create(name="b")
            Clinic.objects.create(name="c")
    finally:
        logger.removeHandler(failing)
    assert failing.failed
    # The capture handler sits after the failing one: the first record never reached it.
    assert [e["instance_repr"]["name"] for e in events] == ["b", "c"]


@pytest.mark.django_db(transaction=True)
def test_events_keep_the_values_of_the_save_not_of_the_commit() -> None:
    with capture_events(MODEL_LOGGER) as events, transaction.atomic():
        clinic = Clinic.objects.create(name="a")
        clinic.name = "b"
        clinic.save()
        clinic.name = "changed after the last save, never saved"
        clinic.delete()
    assert [(e["event_type"], e["instance_repr"]["name"], e["changes"]) for e in events] == [
        ("CREATE", "a", {}),
        ("UPDATE", "b", {"name": {"old": "a", "new": "b"}}),
        ("DELETE", "changed after the last save, never saved", {}),
    ]
    # The DELETE names the row that was deleted, although Django clears the pk after.
    assert events[2]["instance_id"] == events[0]["instance_id"] != "None"


@pytest.mark.django_db(transaction=True)
def test_each_event_of_a_commit_keeps_the_actor_and_context_of_its_change() -> None:
    # The fields are made at commit, once per run of events with one scope and actor.
    alice = User.objects.create(username="alice", email="alice@example.org")
    with capture_events(MODEL_LOGGER) as events, transaction.atomic():
        with audit_context(actor=alice, job="a"):
            Clinic.objects.create(name="1")
            Clinic.objects.create(name="2")
        with audit_context(actor="cron", job="b"):
            Clinic.objects.create(name="3")
        Clinic.objects.create(name="4")
        with audit_context(actor=alice, job="a"):
            Clinic.objects.create(name="5")
        assert events == []
    assert [(e["instance_repr"]["name"], e["user_id"], e["user_info"], e["extra"])
            for e in events] == [
        ("1", str(alice.pk), {"email": "alice@example.org", "first_name": "",
                              "last_name": ""}, {"job": "a"}),
        ("2", str(alice.pk), {"email": "alice@example.org", "first_name": "",
                              "last_name": ""}, {"job": "a"}),
        ("3", "cron", {}, {"job": "b"}),
        ("4", None, {}, {}),
        ("5", str(alice.pk), {"email": "alice@example.org", "first_name": "",
                              "last_name": ""}, {"job": "a"}),
    ]


@pytest.mark.django_db(transaction=True)
def test_savepoints_split_a_transaction_in_order() -> None:
    with capture_events(MODEL_LOGGER) as events, transaction.atomic():
        Clinic.objects.create(name="before")
        with transaction.atomic():
            Clinic.objects.create(name="kept savepoint")
        with contextlib.suppress(Boom), transaction.atomic():
            Clinic.objects.create(name="rolled back")
            raise Boom
        transaction.on_commit(lambda: logging.getLogger(MODEL_LOGGER).log(
            21, "the application's own callback", extra={"model": "app"}))
        Clinic.objects.create(name="after")
    assert [e.get("instance_repr", {}).get("name") or e["message"] for e in events] == [
        "before", "kept savepoint", "the application's own callback", "after",
    ]


@pytest.mark.django_db(transaction=True)
def test_capture_on_commit_callbacks_sees_only_its_own_events(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with capture_events(MODEL_LOGGER) as events, transaction.atomic():
        Clinic.objects.create(name="before the capture")
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            Clinic.objects.create(name="inside the capture")
        assert len(callbacks) == 1
        assert [e["instance_repr"]["name"] for e in events] == ["inside the capture"]
    # The commit emits the rest, and nothing twice.
    assert [e["instance_repr"]["name"] for e in events] == [
        "inside the capture", "before the capture",
    ]


@pytest.mark.django_db(transaction=True)
def test_a_transaction_is_written_in_one_write(tmp_path: Any) -> None:
    from activity_audit.handlers import AuditFileHandler

    writes: list[bytes] = []

    class Counting(AuditFileHandler):
        def _write(self, data: bytes) -> None:
            writes.append(data)
            super()._write(data)

    handler = Counting(tmp_path / "audit.log")
    logger = logging.getLogger(MODEL_LOGGER)
    logger.addHandler(handler)
    try:
        with transaction.atomic():
            for i in range(5):
                Clinic.objects.create(name=f"c{i}")
        Clinic.objects.create(name="autocommit")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert [data.count(b"\n") for data in writes] == [5, 1]
    lines = (tmp_path / "audit.log").read_bytes().splitlines()
    assert [json.loads(line)["instance_repr"]["name"] for line in lines] == [
        "c0", "c1", "c2", "c3", "c4", "autocommit",
    ]


@pytest.mark.django_db(transaction=True)
def test_records_of_one_commit_are_separate_records() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logger = logging.getLogger(MODEL_LOGGER)
    logger.addHandler(keep)
    try:
        with transaction.atomic():
            clinic = Clinic.objects.create(name="a")
            Tag.objects.create(name="t")
            clinic.delete()
    finally:
        logger.removeHandler(keep)
    assert len({id(r) for r in records}) == 3
    assert [r.getMessage().split(" ")[0] for r in records] == ["CREATE", "CREATE", "DELETE"]
    assert [r.__dict__["model"] for r in records] == ["Clinic", "Tag", "Clinic"]
    # Every record has its own event keys, and the stdlib's attributes of this thread.
    assert [r.__dict__["event_type"] for r in records] == ["CREATE", "CREATE", "DELETE"]
    assert {(r.thread, r.process, r.levelname, r.name) for r in records} == {
        (threading.get_ident(), os.getpid(), "AUDIT", MODEL_LOGGER)
    }
