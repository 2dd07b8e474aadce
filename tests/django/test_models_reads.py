"""READ accounting for the models in AUDIT_READ_MODELS."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from activity_audit.context import audit_context, bind
from activity_audit.schema import MODEL_LOGGER
from activity_audit.testing import capture_events
from tests.testapp.models import Clinic, Patient, Visit

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("read_patients")]


@pytest.fixture
def read_patients() -> Any:
    with override_settings(AUDIT_READ_MODELS=["testapp.Patient"]):
        yield


@pytest.fixture
def patients() -> list[Patient]:
    with override_settings(AUDIT_READ_MODELS=[]):
        clinic = Clinic.objects.create(name="c")
        return [Patient.objects.create(name=f"P{i}", clinic=clinic) for i in range(3)]


def reads(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == "READ"]


def test_one_read_per_model_when_the_context_ends(patients: list[Patient]) -> None:
    user = User.objects.create(username="doc")
    with capture_events(MODEL_LOGGER) as events, audit_context(actor=user, purpose="treatment"):
        list(Patient.objects.order_by("name"))
        Patient.objects.get(pk=patients[0].pk)
        list(Clinic.objects.all())  # not a READ model
        assert reads(events) == []
    [event] = reads(events)
    assert event["model"] == "Patient"
    assert event["message"] == "READ event for Patient (3 ids)"
    assert event["instance_id"] is None
    assert event["instance_ids"] == [str(p.pk) for p in patients]
    assert event["ids_total"] == 3
    assert event["count"] == 4
    assert event["user_id"] == str(user.pk)
    assert event["extra"] == {"purpose": "treatment"}
    assert event["instance_repr"] == {}
    assert event["changes"] == {}


def test_nested_contexts_flush_once_at_the_outermost(patients: list[Patient]) -> None:
    with capture_events(MODEL_LOGGER) as events, audit_context(actor="job"):
        with audit_context(step="inner"):
            list(Patient.objects.all())
        assert reads(events) == []
        Patient.objects.get(pk=patients[0].pk)
    [event] = reads(events)
    assert event["count"] == 4


def test_related_loads_count(patients: list[Patient]) -> None:
    with override_settings(AUDIT_READ_MODELS=[]):
        Visit.objects.create(patient=patients[1], reason="r")
    with capture_events(MODEL_LOGGER) as events, audit_context(actor="job"):
        list(Visit.objects.select_related("patient"))
    [event] = reads(events)
    assert event["instance_ids"] == [str(patients[1].pk)]


def test_late_actor_resolved_at_the_end_of_the_scope(patients: list[Patient]) -> None:
    # As in a request: the user is known only after authentication ran in the view.
    actor: dict[str, Any] = {}
    with (
        capture_events(MODEL_LOGGER) as events,
        bind(actor_resolver=lambda: actor.get("user"), request_id="req-9"),
    ):
        list(Patient.objects.all())
        actor["user"] = "late-user"
    [event] = reads(events)
    assert event["user_id"] == "late-user"
    assert event["request_id"] == "req-9"


@override_settings(AUDIT_READ_MAX_IDS=2)
def test_ids_capped_with_total(patients: list[Patient]) -> None:
    with capture_events(MODEL_LOGGER) as events, audit_context(actor="job"):
        list(Patient.objects.order_by("name"))
    [event] = reads(events)
    assert event["instance_ids"] == [str(p.pk) for p in patients[:2]]
    assert event["ids_total"] == 3


def test_outside_any_context_one_read_per_instance(patients: list[Patient]) -> None:
    with capture_events(MODEL_LOGGER) as events:
        list(Patient.objects.order_by("name"))
    assert [e["instance_id"] for e in reads(events)] == [str(p.pk) for p in patients]
    assert [e["instance_ids"] for e in reads(events)] == [[str(p.pk)] for p in patients]
    assert reads(events)[0]["message"] == f"READ event for Patient (id: {patients[0].pk})"


@pytest.mark.parametrize(
    ("fetch", "with_ids"),
    [
        (lambda qs: list(qs.values()), True),
        (lambda qs: list(qs.values("pk", "name")), True),
        (lambda qs: list(qs.values("name", "id")), True),
        (lambda qs: list(qs.values("name")), False),
        (lambda qs: list(qs.values_list()), True),
        (lambda qs: list(qs.values_list("name", "pk")), True),
        (lambda qs: list(qs.values_list("name", "id", named=True)), True),
        (lambda qs: list(qs.values_list("id", flat=True)), True),
        (lambda qs: list(qs.values_list("name", flat=True)), False),
        (lambda qs: list(qs.values_list("name").iterator()), False),
        (lambda qs: list(qs.values("id").iterator(chunk_size=2)), True),
    ],
    ids=["values", "values-pk", "values-id", "values-name", "list", "list-pk", "named",
         "flat-id", "flat-name", "iterator", "iterator-chunks"],
)
def test_values_rows_are_reads(patients: list[Patient], fetch: Any, with_ids: bool) -> None:
    with capture_events(MODEL_LOGGER) as events, audit_context(actor="job"):
        rows = fetch(Patient.objects.order_by("name"))
        fetch(Clinic.objects.all())  # not a READ model
        assert reads(events) == []
    assert len(rows) == 3
    [event] = reads(events)
    assert event["count"] == 3
    assert event["instance_ids"] == ([str(p.pk) for p in patients] if with_ids else [])
    assert event["ids_total"] == (3 if with_ids else 0)


def test_values_rows_join_the_scope_tally_of_instances(patients: list[Patient]) -> None:
    with capture_events(MODEL_LOGGER) as events, audit_context(actor="job"):
        Patient.objects.get(pk=patients[2].pk)
        list(Patient.objects.order_by("name").values_list("pk", flat=True))
    [event] = reads(events)
    assert event["count"] == 4
    assert event["instance_ids"] == [str(patients[2].pk), str(patients[0].pk),
                                     str(patients[1].pk)]


def test_values_outside_any_context_one_read_per_evaluation(patients: list[Patient]) -> None:
    with capture_events(MODEL_LOGGER) as events:
        names = Patient.objects.order_by("name").values_list("name", "id")
        first = next(iter(names.iterator()))  # stopped early: one row read
        list(names)
    assert first[0] == "P0"
    assert [(e["count"], e["ids_total"]) for e in reads(events)] == [(1, 1), (3, 3)]
    assert reads(events)[1]["message"] == "READ event for Patient (3 ids)"


def test_not_read_audited_by_default(patients: list[Patient]) -> None:
    with (
        override_settings(AUDIT_READ_MODELS=[]),
        capture_events(MODEL_LOGGER) as events,
        audit_context(actor="job"),
    ):
        list(Patient.objects.all())
    assert reads(events) == []
