"""Model events are emitted when the transaction commits, and never for rolled-back writes."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pytest
from django.db import IntegrityError, transaction

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
