"""Model auditing: the records of CREATE, UPDATE, DELETE, M2M_* and BULK_* events."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.db import connection, connections
from django.db.models import F
from django.test import override_settings
from rest_framework.authtoken.models import Token, TokenProxy

import django
from activity_audit.context import audit_context
from activity_audit.diff import SNAPSHOT_KEY, UNKNOWN
from activity_audit.schema import BASE_KEYS, MODEL_KEYS, MODEL_LOGGER, REDACTED
from activity_audit.testing import capture_events
from tests.testapp.models import Clinic, Gadget, Note, Opaque, Patient, Tag, Visit

pytestmark = pytest.mark.django_db

Committed = Callable[..., AbstractContextManager[Any]]


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    """Model events of the test (emitted at commit: see ``committed``)."""
    with capture_events(MODEL_LOGGER) as captured:
        yield captured


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Committed) -> Callable[[], Any]:
    """A block whose on-commit callbacks run when it ends (the test's transaction never commits)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == event_type]


@pytest.fixture
def clinic() -> Clinic:
    return Clinic.objects.create(name="North")


@pytest.fixture
def patient(clinic: Clinic) -> Patient:
    return Patient.objects.create(
        name="Ada", email="ada@example.com", ssn="123-45-6789", api_token="tok",
        balance=Decimal("10.50"), birth_date=dt.date(1990, 5, 17), clinic=clinic,
    )


# -- CREATE -------------------------------------------------------------------


def test_create_record(events: list[dict[str, Any]], committed: Any, clinic: Clinic) -> None:
    with committed():
        patient = Patient.objects.create(
            name="Ada", email="ada@example.com", ssn="123-45-6789", api_token="tok",
            balance=Decimal("10.50"), birth_date=dt.date(1990, 5, 17), clinic=clinic,
        )
    [event] = of_type(events, "CREATE")
    assert event["message"] == f"CREATE event for Patient (id: {patient.pk})"
    assert event["level"] == "AUDIT"
    assert event["name"] == MODEL_LOGGER
    assert event["model"] == "Patient"
    assert event["app_label"] == "testapp"
    assert event["instance_id"] == str(patient.pk)
    assert event["changes"] == {}
    assert event["user_id"] is None
    assert event["user_info"] == {}
    assert event["request_id"] is None
    assert event["service_name"] == "test-service"
    assert event["extra"] == {}
    assert event["instance_repr"] == {
        "id": str(patient.pk),
        "name": "Ada",
        "email": "ada@example.com",
        "is_active": True,
        "ssn": REDACTED,
        "api_token": REDACTED,
        "notes": "",
        "balance": "10.50",
        "birth_date": "1990-05-17",
        "created_at": patient.created_at.isoformat(),
        "clinic": clinic.pk,
    }


def test_model_record_golden_keys(events: list[dict[str, Any]], committed: Any) -> None:
    with committed():
        Clinic.objects.create(name="North")
    [event] = events
    per_row_keys = {
        "model", "app_label", "event_type", "instance_id", "instance_repr", "changes",
        "user_id", "user_info", "request_id", "service_name", "trace_id", "extra",
    }
    assert list(event) == [*BASE_KEYS, *(k for k in MODEL_KEYS if k in per_row_keys)]


def test_values_are_json_native(events: list[dict[str, Any]], committed: Any) -> None:
    with committed():
        Visit.objects.create(
            patient=Patient.objects.create(name="Ada", balance=Decimal("0.10")),
            reason="check", metadata={"bp": [120, 80], "at": "morning"},
        )
    patient_event, visit_event = events
    assert patient_event["instance_repr"]["balance"] == "0.10"  # never a float
    assert visit_event["instance_repr"]["metadata"] == {"bp": [120, 80], "at": "morning"}
    assert visit_event["instance_repr"]["patient"] == patient_event["instance_id"]


def test_actor_and_context(events: list[dict[str, Any]], committed: Any) -> None:
    user = User.objects.create(username="doc", email="doc@example.com", first_name="Dee")
    with audit_context(actor=user, request_id="req-1", reason="import"), committed():
        Clinic.objects.create(name="North")
    [event] = of_type(events, "CREATE")
    assert event["user_id"] == str(user.pk)
    assert event["user_info"] == {"email": "doc@example.com", "first_name": "Dee",
                                  "last_name": ""}
    assert event["request_id"] == "req-1"
    assert event["extra"] == {"reason": "import"}


def test_user_password_hash_never_appears(events: list[dict[str, Any]], committed: Any) -> None:
    with override_settings(AUDIT_MASKED_FIELDS_PATTERN=r"^nothing$"), committed():
        user = User.objects.create_user("nurse", password="s3cret-pass")
        user.set_password("an0ther-pass")
        user.save()
    create, update = events
    assert create["instance_repr"]["password"] == REDACTED
    assert update["changes"]["password"] == {"old": REDACTED, "new": REDACTED}
    assert user.password not in str(events)


# -- UPDATE -------------------------------------------------------------------


def test_update_diff_against_loaded_values(
    events: list[dict[str, Any]], committed: Any, patient: Patient
) -> None:
    loaded = Patient.objects.get(pk=patient.pk)
    loaded.name = "Ada L."
    loaded.balance = Decimal("11.00")
    loaded.birth_date = dt.date(1991, 1, 2)
    with committed():
        loaded.save()
    [event] = of_type(events, "UPDATE")
    assert event["message"] == f"UPDATE event for Patient (id: {patient.pk})"
    assert event["changes"] == {
        "name": {"old": "Ada", "new": "Ada L."},
        "balance": {"old": "10.50", "new": "11.00"},
        "birth_date": {"old": "1990-05-17", "new": "1991-01-02"},
    }
    assert event["instance_repr"]["name"] == "Ada L."


def test_update_of_created_instance_and_successive_saves(
    events: list[dict[str, Any]], committed: Any
) -> None:
    with committed():
        clinic = Clinic.objects.create(name="A")
        clinic.name = "B"
        clinic.save()
        clinic.name = "C"
        clinic.save()
    assert [e["changes"] for e in of_type(events, "UPDATE")] == [
        {"name": {"old": "A", "new": "B"}},
        {"name": {"old": "B", "new": "C"}},
    ]
    # Each snapshot replaces the last one; they never chain.
    assert SNAPSHOT_KEY not in clinic.__dict__[SNAPSHOT_KEY]


def test_foreign_key_change(events: list[dict[str, Any]], committed: Any, patient: Patient) -> None:
    other = Clinic.objects.create(name="South")
    loaded = Patient.objects.get(pk=patient.pk)
    old_clinic = loaded.clinic_id
    loaded.clinic = other
    with committed():
        loaded.save()
    [event] = of_type(events, "UPDATE")
    assert event["changes"] == {"clinic": {"old": old_clinic, "new": other.pk}}


def test_assigned_string_equal_to_loaded_decimal_is_no_change(
    events: list[dict[str, Any]], committed: Any, patient: Patient
) -> None:
    loaded = Patient.objects.get(pk=patient.pk)
    loaded.balance = "10.50"  # type: ignore[assignment]
    with committed():
        loaded.save()
    [event] = of_type(events, "UPDATE")
    assert event["changes"] == {}


def test_unchanged_update_logged_by_default(
    events: list[dict[str, Any]], committed: Any, patient: Patient
) -> None:
    with committed():
        Patient.objects.get(pk=patient.pk).save()
    [event] = of_type(events, "UPDATE")
    assert event["changes"] == {}


@override_settings(AUDIT_LOG_UNCHANGED_UPDATES=False)
def test_unchanged_update_skipped_when_configured(
    events: list[dict[str, Any]], committed: Any, patient: Patient
) -> None:
    loaded = Patient.objects.get(pk=patient.pk)
    with committed():
        loaded.save()
        loaded.notes = "changed"
        loaded.save()
    [event] = of_type(events, "UPDATE")
    assert event["changes"] == {"notes": {"old": "", "new": "changed"}}


def test_update_fields_honoured(
    events: list[dict[str, Any]], committed: Any, patient: Patient
) -> None:
    loaded = Patient.objects.get(pk=patient.pk)
    loaded.name = "Ada L."
    loaded.notes = "not saved yet"
    with committed():
        loaded.save(update_fields=["name"])
        loaded.save(update_fields=["notes"])
    first, second = of_type(events, "UPDATE")
    assert first["changes"] == {"name": {"old": "Ada", "new": "Ada L."}}
    # The snapshot kept the database value of notes, not the unsaved one.
    assert second["changes"] == {"notes": {"old": "", "new": "not saved yet"}}


def test_update_fields_by_attname(
    events: list[dict[str, Any]], committed: Any, patient: Patient
) -> None:
    other = Clinic.objects.create(name="South")
    loaded = Patient.objects.get(pk=patient.pk)
    loaded.clinic_id = other.pk
    with committed():
        loaded.save(update_fields=["clinic_id"])
    [event] = of_type(events, "UPDATE")
    assert event["changes"] == {"clinic": {"old": patient.clinic_id, "new": other.pk}}


def test_json_field_mutated_in_place(events: list[dict[str, Any]], committed: Any) -> None:
    visit = Visit.objects.create(
        patient=Patient.objects.create(name="Ada"), reason="r", metadata={"bp": [120, 80]}
    )
    loaded = Visit.objects.get(pk=visit.pk)
    loaded.metadata["bp"].append(60)
    loaded.metadata["note"] = "x"
    with committed():
        loaded.save()
    [event] = of_type(events, "UPDATE")
    assert event["changes"] == {
        "metadata": {"old": {"bp": [120, 80]}, "new": {"bp": [120, 80, 60], "note": "x"}}
    }


def test_json_field_mutated_after_save(events: list[dict[str, Any]], committed: Any) -> None:
    with committed():
        visit = Visit.objects.create(
            patient=Patient.objects.create(name="Ada"), reason="r", metadata={"n": 1}
        )
        visit.metadata["n"] = 2
        visit.save()
    [event] = of_type(events, "UPDATE")
    assert event["changes"] == {"metadata": {"old": {"n": 1}, "new": {"n": 2}}}


def test_f_expression_saved_then_unknown(events: list[dict[str, Any]], committed: Any) -> None:
    visit = Visit.objects.create(patient=Patient.objects.create(name="Ada"), reason="r", score=1)
    with committed():
        visit.score = F("score") + 1
        visit.save()
        visit.refresh_from_db()
        visit.score += 1
        visit.save()
    first, second = of_type(events, "UPDATE")
    assert first["changes"]["score"]["old"] == 1
    if django.VERSION >= (6, 0) and connection.features.can_return_rows_from_update:
        # Django 6.0+ reads an expression's result back with UPDATE ... RETURNING.
        assert first["changes"]["score"]["new"] == 2
    elif django.VERSION >= (6, 1):
        # Without RETURNING, Django 6.1 defers the field: its new value is unknown.
        assert first["changes"]["score"]["new"] == UNKNOWN
    else:
        # The expression as assigned: its value is not known without a query.
        assert isinstance(first["changes"]["score"]["new"], str)
    assert second["changes"] == {"score": {"old": 2, "new": 3}}


def test_deferred_fields(events: list[dict[str, Any]], committed: Any, patient: Patient) -> None:
    loaded = Patient.objects.only("name").get(pk=patient.pk)
    loaded.name = "Ada L."
    loaded.notes = "assigned while deferred"
    with committed():
        loaded.save()
    [event] = of_type(events, "UPDATE")
    assert event["changes"] == {
        "name": {"old": "Ada", "new": "Ada L."},
        "notes": {"old": UNKNOWN, "new": "assigned while deferred"},
    }
    # Deferred and never assigned: neither changed nor in the repr (reading it would query).
    assert "email" not in event["instance_repr"]


def test_deferred_field_read_lazily_is_not_a_change(
    events: list[dict[str, Any]], committed: Any, patient: Patient
) -> None:
    loaded = Patient.objects.only("name").get(pk=patient.pk)
    assert loaded.email == "ada@example.com"  # a lazy load through refresh_from_db
    with committed():
        loaded.save()
    [event] = of_type(events, "UPDATE")
    assert event["changes"] == {}


def test_refresh_from_db_resets_the_snapshot(
    events: list[dict[str, Any]], committed: Any, patient: Patient
) -> None:
    loaded = Patient.objects.get(pk=patient.pk)
    Patient.objects.filter(pk=patient.pk).update(name="Changed elsewhere")
    loaded.refresh_from_db()
    loaded.name = "Mine"
    with committed():
        loaded.save()
    [event] = of_type(events, "UPDATE")
    assert event["changes"] == {"name": {"old": "Changed elsewhere", "new": "Mine"}}


def test_instance_never_loaded_reports_unknown_old(
    events: list[dict[str, Any]], committed: Any, clinic: Clinic
) -> None:
    with committed():
        Clinic(pk=clinic.pk, name="Renamed").save()
    [event] = of_type(events, "UPDATE")
    assert event["changes"] == {"name": {"old": UNKNOWN, "new": "Renamed"}}


# -- masking and field selection ------------------------------------------------


def test_masked_fields_change_recorded_without_values(
    events: list[dict[str, Any]], committed: Any, patient: Patient
) -> None:
    loaded = Patient.objects.get(pk=patient.pk)
    loaded.ssn = "987-65-4321"
    with committed():
        loaded.save()
    [event] = of_type(events, "UPDATE")
    assert event["changes"] == {"ssn": {"old": REDACTED, "new": REDACTED}}
    assert "987-65-4321" not in str(event)
    assert "123-45-6789" not in str(event)


@override_settings(AUDIT_MASKED_FIELDS={"testapp.Patient": ["notes"]})
def test_masked_fields_per_model(events: list[dict[str, Any]], committed: Any) -> None:
    with committed():
        Patient.objects.create(name="Ada", notes="private")
        Visit.objects.create(patient=Patient.objects.create(name="Bo"), reason="private")
    assert events[0]["instance_repr"]["notes"] == REDACTED
    assert events[0]["instance_repr"]["ssn"] == REDACTED  # the pattern still applies
    assert events[2]["instance_repr"]["reason"] == "private"


@override_settings(AUDIT_MASKED_FIELDS_PATTERN=r"^email$")
def test_masked_fields_pattern(events: list[dict[str, Any]], committed: Any) -> None:
    with committed():
        Patient.objects.create(name="Ada", email="a@example.com", ssn="1")
    [event] = events
    assert event["instance_repr"]["email"] == REDACTED
    assert event["instance_repr"]["ssn"] == "1"


@override_settings(AUDIT_EXCLUDED_FIELDS={"testapp.Patient": ["notes", "birth_date"]})
def test_excluded_fields(events: list[dict[str, Any]], committed: Any, patient: Patient) -> None:
    loaded = Patient.objects.get(pk=patient.pk)
    loaded.notes = "hidden"
    loaded.name = "Ada L."
    with committed():
        loaded.save()
    [event] = of_type(events, "UPDATE")
    assert "notes" not in event["instance_repr"]
    assert "birth_date" not in event["instance_repr"]
    assert event["changes"] == {"name": {"old": "Ada", "new": "Ada L."}}


@override_settings(AUDIT_MODELS_EXCLUDE=["testapp.Note"])
def test_models_exclude(events: list[dict[str, Any]], committed: Any) -> None:
    with committed():
        note = Note.objects.create(text="n")
        note.delete()
        Note.objects.bulk_create([Note(text="a")])
        Clinic.objects.create(name="c")
    assert [e["model"] for e in events] == ["Clinic"]


@override_settings(AUDIT_MODELS_INCLUDE=["testapp.Clinic"])
def test_models_include(events: list[dict[str, Any]], committed: Any) -> None:
    with committed():
        Clinic.objects.create(name="c")
        Patient.objects.create(name="p")
        Tag.objects.create(name="t")
    assert [e["model"] for e in events] == ["Clinic"]


def test_bookkeeping_models_not_audited_by_default(
    events: list[dict[str, Any]], committed: Any
) -> None:
    with committed():
        Session.objects.create(session_key="k" * 32, session_data="{}",
                               expire_date=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        ContentType.objects.create(app_label="x", model="y")
    assert events == []


@override_settings(AUDIT_MODELS_INCLUDE=["sessions"])
def test_bookkeeping_models_audited_when_included(
    events: list[dict[str, Any]], committed: Any
) -> None:
    with committed():
        session = Session.objects.create(session_key="k" * 32, session_data="{}",
                                         expire_date=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        session.delete()
    assert [(e["model"], e["event_type"]) for e in events] == [
        ("Session", "CREATE"), ("Session", "DELETE"),
    ]
    # A session key is a credential, and the primary key: masked wherever it appears.
    assert "k" * 32 not in str(events)
    assert events[0]["instance_id"] == REDACTED
    assert events[0]["instance_repr"]["session_key"] == REDACTED


def test_drf_token_key_never_appears(events: list[dict[str, Any]], committed: Any) -> None:
    user = User.objects.create(username="api")
    with committed():
        token = Token.objects.create(user=user)
        Token.objects.filter(user=user).update(created=token.created)
    create, update = events
    assert token.key not in str(events)
    assert create["instance_id"] == REDACTED
    assert create["message"] == f"CREATE event for Token (id: {REDACTED})"
    assert create["instance_repr"]["user"] == user.pk
    assert update["event_type"] == "BULK_UPDATE"


def test_logger_disabled_builds_nothing_but_keeps_snapshot(committed: Any) -> None:
    logger = logging.getLogger(MODEL_LOGGER)
    previous = logger.disabled
    logger.disabled = True
    try:
        clinic = Clinic.objects.create(name="A")
        clinic.name = "B"
        clinic.save()
    finally:
        logger.disabled = previous
    with capture_events(MODEL_LOGGER) as events, committed():
        clinic.name = "C"
        clinic.save()
    [event] = events
    assert event["changes"] == {"name": {"old": "B", "new": "C"}}


# -- DELETE -------------------------------------------------------------------


def test_delete_record(events: list[dict[str, Any]], committed: Any, patient: Patient) -> None:
    pk = patient.pk
    with committed():
        patient.delete()
    [event] = of_type(events, "DELETE")
    assert event["message"] == f"DELETE event for Patient (id: {pk})"
    assert event["instance_id"] == str(pk)
    assert event["instance_repr"]["name"] == "Ada"
    assert event["instance_repr"]["ssn"] == REDACTED


def test_queryset_delete_one_event_per_row_with_cascades(
    events: list[dict[str, Any]], committed: Any
) -> None:
    clinic = Clinic.objects.create(name="North")
    patients = [Patient.objects.create(name=f"P{i}", clinic=clinic) for i in range(3)]
    visits = [Visit.objects.create(patient=p, reason="r") for p in patients[:2]]
    with committed():
        deleted, _ = Clinic.objects.filter(pk=clinic.pk).delete()
    assert deleted == 6
    deletes = of_type(events, "DELETE")
    assert sorted((e["model"], e["instance_id"]) for e in deletes) == sorted(
        [("Clinic", str(clinic.pk))]
        + [("Patient", str(p.pk)) for p in patients]
        + [("Visit", str(v.pk)) for v in visits]
    )


# -- M2M ------------------------------------------------------------------------


def test_m2m_add_remove_clear_forward(
    events: list[dict[str, Any]], committed: Any, patient: Patient
) -> None:
    tags = [Tag.objects.create(name=n) for n in ("a", "b", "c")]
    with committed():
        patient.tags.add(*tags)
        patient.tags.remove(tags[0])
        patient.tags.clear()
    add, remove, clear = [e for e in events if e["event_type"].startswith("M2M")]
    assert add["event_type"] == "M2M_ADD"
    assert add["message"] == f"M2M_ADD event for Patient (id: {patient.pk})"
    assert add["field"] == "tags"
    assert add["related_model"] == "testapp.Tag"
    assert add["related_ids"] == [str(pk) for pk in sorted(t.pk for t in tags)]
    assert remove["event_type"] == "M2M_REMOVE"
    assert remove["related_ids"] == [str(tags[0].pk)]
    assert clear["event_type"] == "M2M_CLEAR"
    assert clear["related_ids"] is None  # not prefetched: listing them would cost a query


def test_m2m_reverse_side(events: list[dict[str, Any]], committed: Any, patient: Patient) -> None:
    tag = Tag.objects.create(name="vip")
    with committed():
        tag.patients.add(patient)
        tag.patients.remove(patient)
    add, remove = [e for e in events if e["event_type"].startswith("M2M")]
    assert (add["model"], add["event_type"], add["field"]) == ("Tag", "M2M_ADD", "patients")
    assert add["instance_id"] == str(tag.pk)
    assert add["related_model"] == "testapp.Patient"
    assert add["related_ids"] == [str(patient.pk)]
    assert (remove["event_type"], remove["related_ids"]) == ("M2M_REMOVE", [str(patient.pk)])


def test_m2m_clear_lists_prefetched_ids_and_repr_includes_m2m(
    events: list[dict[str, Any]], committed: Any, patient: Patient
) -> None:
    tags = [Tag.objects.create(name=n) for n in ("a", "b")]
    patient.tags.add(*tags)
    loaded = Patient.objects.prefetch_related("tags").get(pk=patient.pk)
    loaded.name = "Ada L."
    with committed():
        loaded.save()
        loaded.tags.clear()
    update = of_type(events, "UPDATE")[0]
    assert update["instance_repr"]["tags"] == sorted(t.pk for t in tags)
    [clear] = of_type(events, "M2M_CLEAR")
    if django.VERSION >= (6, 1):
        # Django 6.1 drops the prefetch cache before sending pre_clear.
        assert clear["related_ids"] is None
    else:
        assert clear["related_ids"] == [str(pk) for pk in sorted(t.pk for t in tags)]


def test_plain_save_has_no_m2m_in_repr(
    events: list[dict[str, Any]], committed: Any, patient: Patient
) -> None:
    patient.tags.add(Tag.objects.create(name="a"))
    with committed():
        patient.save()
    assert "tags" not in of_type(events, "UPDATE")[0]["instance_repr"]


# -- BULK -----------------------------------------------------------------------


def test_bulk_create(events: list[dict[str, Any]], committed: Any) -> None:
    objs = [Clinic(name=f"C{i}") for i in range(3)]
    with committed():
        created = Clinic.objects.bulk_create(objs)
    assert created is objs or created == objs
    [event] = events
    assert event["event_type"] == "BULK_CREATE"
    assert event["message"] == "BULK_CREATE event for Clinic (count: 3)"
    assert event["count"] == 3
    assert event["fields"] == ["id", "name"]
    assert event["instance_id"] is None
    if connection.features.can_return_rows_from_bulk_insert:
        assert event["instance_ids"] == [str(c.pk) for c in created]
    assert event["ids_total"] == len(event["instance_ids"])


def test_bulk_create_uuid_pks_and_later_save_diffs(
    events: list[dict[str, Any]], committed: Any
) -> None:
    with committed():
        created = Patient.objects.bulk_create([Patient(name="A"), Patient(name="B")])
        created[0].name = "A2"
        created[0].save()
    bulk, update = events
    assert bulk["instance_ids"] == [str(p.pk) for p in created]
    assert update["changes"] == {"name": {"old": "A", "new": "A2"}}


@override_settings(AUDIT_READ_MAX_IDS=2)
def test_bulk_ids_capped(events: list[dict[str, Any]], committed: Any) -> None:
    with committed():
        created = Patient.objects.bulk_create([Patient(name=str(i)) for i in range(5)])
    [event] = events
    assert event["instance_ids"] == [str(p.pk) for p in created[:2]]
    assert event["ids_total"] == 5


def test_bulk_update(events: list[dict[str, Any]], committed: Any) -> None:
    clinics = Clinic.objects.bulk_create([Clinic(name=f"C{i}") for i in range(3)])
    clinics = list(Clinic.objects.order_by("pk"))
    for c in clinics:
        c.name = c.name.lower()
    with committed():
        rows = Clinic.objects.bulk_update(clinics, ["name"], batch_size=2)
        clinics[0].name = "again"
        clinics[0].save()
    assert rows == 3
    bulk_events = of_type(events, "BULK_UPDATE")
    assert len(bulk_events) == 1  # the per-batch update() calls are not reported again
    [event] = bulk_events
    assert event["message"] == "BULK_UPDATE event for Clinic (count: 3)"
    assert event["count"] == 3
    assert event["fields"] == ["name"]
    assert event["instance_ids"] == [str(c.pk) for c in clinics]
    # The snapshot follows bulk_update: the next save diffs against it.
    [update] = of_type(events, "UPDATE")
    assert update["changes"] == {"name": {"old": "c0", "new": "again"}}


def test_queryset_update(events: list[dict[str, Any]], committed: Any) -> None:
    patient = Patient.objects.create(name="Ada")
    Visit.objects.create(patient=patient, reason="a", score=1)
    Visit.objects.create(patient=patient, reason="b", score=5)
    with committed():
        rows = Visit.objects.filter(score__lt=3, reason="a").update(score=F("score") + 10)
    assert rows == 1
    assert sorted(Visit.objects.values_list("score", flat=True)) == [5, 11]  # applied once
    [event] = events
    assert event["event_type"] == "BULK_UPDATE"
    assert event["count"] == 1
    assert event["fields"] == ["score"]
    assert "score" in event["query"]["sql"]
    assert "reason" in event["query"]["sql"]
    assert sorted(event["query"]["params"], key=str) == [3, "a"]
    assert "instance_ids" not in event


def test_queryset_update_all_and_none(events: list[dict[str, Any]], committed: Any) -> None:
    Clinic.objects.create(name="x")
    with committed():
        assert Clinic.objects.update(name="y") == 1
        assert Clinic.objects.filter(pk__in=[]).update(name="z") == 0
    every, nothing = events
    assert every["query"] == {"sql": "", "params": []}
    assert nothing["query"] == {"sql": None, "params": []}
    assert nothing["count"] == 0


@override_settings(AUDIT_MODELS_EXCLUDE=["authtoken.Token"])
def test_proxy_follows_its_concrete_model(events: list[dict[str, Any]], committed: Any) -> None:
    with committed():
        TokenProxy.objects.create(user=User.objects.create(username="api"))
    assert [e["model"] for e in events] == ["User"]


def test_proxy_audited_under_its_own_name(events: list[dict[str, Any]], committed: Any) -> None:
    user = User.objects.create(username="api")
    with committed():
        proxy = TokenProxy.objects.create(user=user)
    [event] = events
    assert event["model"] == "TokenProxy"
    assert proxy.key not in str(event)


def test_queryset_update_filtering_on_masked_field(
    events: list[dict[str, Any]], committed: Any
) -> None:
    Patient.objects.create(name="Ada", ssn="123-45-6789")
    with committed():
        Patient.objects.filter(ssn="123-45-6789", name="Ada").update(notes="n")
    [event] = events
    assert "ssn" in event["query"]["sql"]
    assert event["query"]["params"] == [REDACTED, REDACTED]


@pytest.mark.parametrize(
    "filtered",
    [
        lambda: Visit.objects.filter(patient__api_token="tok-SECRET", patient__ssn="123-45-6789"),
        lambda: Visit.objects.filter(
            patient__in=Patient.objects.filter(api_token="tok-SECRET", ssn="123-45-6789")
        ),
    ],
    ids=["join", "subquery"],
)
def test_queryset_update_filtering_on_another_models_masked_fields(
    events: list[dict[str, Any]], committed: Any, filtered: Any
) -> None:
    patient = Patient.objects.create(name="Ada", ssn="123-45-6789", api_token="tok-SECRET")
    Visit.objects.create(patient=patient, reason="r")
    with committed():
        assert filtered().update(score=5) == 1
    [event] = [e for e in events if e["event_type"] == "BULK_UPDATE"]
    assert "tok-SECRET" not in str(event)
    assert "123-45-6789" not in str(event)
    assert set(event["query"]["params"]) == {REDACTED}


def test_update_of_fk_reports_field_name(events: list[dict[str, Any]], committed: Any) -> None:
    clinic = Clinic.objects.create(name="x")
    Patient.objects.create(name="Ada")
    with committed():
        Patient.objects.update(clinic_id=clinic.pk)
    [event] = of_type(events, "BULK_UPDATE")
    assert event["fields"] == ["clinic"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_async_bulk_methods_audited() -> None:
    try:
        with capture_events(MODEL_LOGGER) as events:
            created = await Clinic.objects.abulk_create([Clinic(name="a")])
            await Clinic.objects.filter(pk=created[0].pk).aupdate(name="b")
    finally:
        # The ORM ran in asgiref's worker thread: close its connection there, or
        # the test database cannot be dropped at the end of the session.
        await sync_to_async(connections.close_all)()
    assert [e["event_type"] for e in events] == ["BULK_CREATE", "BULK_UPDATE"]


def test_patches_installed_once() -> None:
    from django.db.models import QuerySet

    from activity_audit import bulk, receivers

    before = (QuerySet.bulk_create, QuerySet.bulk_update, QuerySet.update)
    receivers.connect()
    bulk.install()
    assert (QuerySet.bulk_create, QuerySet.bulk_update, QuerySet.update) == before
    original = QuerySet.update._activity_audit_original  # type: ignore[attr-defined]
    assert not hasattr(original, "_activity_audit_original")


# -- never breaking the application ---------------------------------------------


class _RaisingHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        raise RuntimeError("handler is broken")

    def handle(self, record: logging.LogRecord) -> bool:
        # Bypass the stdlib's lock-and-emit wrapper's error handling: raise for real.
        self.emit(record)
        return True


def test_failing_handler_leaves_save_unaffected(
    committed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger(MODEL_LOGGER)
    handler = _RaisingHandler()
    logger.addHandler(handler)
    try:
        with caplog.at_level(logging.ERROR, logger="activity_audit"), committed():
            clinic = Clinic.objects.create(name="A")
            clinic.name = "B"
            clinic.save()
            assert Clinic.objects.filter(pk=clinic.pk).update(name="C") == 1
            clinic.delete()
    finally:
        logger.removeHandler(handler)
    assert not Clinic.objects.exists()
    assert any("could not emit audit event" in r.getMessage() for r in caplog.records)


def test_unserializable_and_uncomparable_values(
    events: list[dict[str, Any]], committed: Any
) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

        def __repr__(self) -> str:
            raise RuntimeError("no")

    with audit_context(odd=Unprintable()), committed():
        gadget = Gadget.objects.create(label="g", payload=Opaque("raw-1"))
        loaded = Gadget.objects.get(pk=gadget.pk)
        loaded.payload = Opaque("raw-2")
        loaded.save()
    assert Gadget.objects.get(pk=gadget.pk).payload.raw == "raw-2"
    create, update = events
    assert create["instance_repr"]["payload"] == "<unserializable Opaque>"
    assert update["changes"]["payload"]["new"] == "<unserializable Opaque>"
    assert create["extra"]["odd"].startswith("<unserializable ")


def test_binary_content_is_recorded_by_size(
    events: list[dict[str, Any]], committed: Any
) -> None:
    from tests.testapp.models import Attachment

    with committed():
        doc = Attachment.objects.create(name="scan", content=b"%PDF secret scan")
    loaded = Attachment.objects.get(pk=doc.pk)
    loaded.content = b"%PDF new scan, longer"
    with committed():
        loaded.save()
    create, update = of_type(events, "CREATE")[0], of_type(events, "UPDATE")[0]
    assert create["instance_repr"]["content"] == {"binary": True, "size": 16}
    assert update["changes"]["content"] == {
        "old": {"binary": True, "size": 16}, "new": {"binary": True, "size": 21},
    }
    assert "scan" not in str(update["changes"])


@pytest.mark.parametrize("value", [
    dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    dt.datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
    dt.datetime(1, 1, 1),
    dt.datetime(999, 12, 31, 23, 59, 59, 999999),
    dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.datetime(2025, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=-1, seconds=-15))),
    dt.date(2025, 1, 2),
])
def test_datetimes_are_iso_8601_as_isoformat_writes_them(value: Any) -> None:
    from activity_audit.diff import native

    assert native(value) == value.isoformat()


def test_uuids_are_their_canonical_text() -> None:
    import uuid

    from activity_audit.diff import native

    for value in (uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.uuid4()):
        assert native(value) == str(value)


def test_model_event_refuses_keys_outside_the_schema() -> None:
    from activity_audit.diff import model_event, model_info
    from activity_audit.schema import EventType

    info = model_info(Clinic)
    assert info is not None
    event = model_event(info, EventType.BULK_CREATE, None, count=1, fields=["name"],
                        related_model="x")
    assert [k for k in event if k in ("related_model", "count", "fields")] == [
        "related_model", "count", "fields"]
    with pytest.raises(TypeError, match="instance_count"):
        model_event(info, EventType.BULK_CREATE, None, instance_count=1)
