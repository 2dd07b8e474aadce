"""Model auditing adds no database query and leaves user models' migrations alone."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import F
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from activity_audit.schema import MODEL_LOGGER
from activity_audit.testing import capture_events
from tests.testapp.models import Clinic, Note, Patient, Tag, Visit

pytestmark = pytest.mark.django_db


def queries_without_auditing(operation: Callable[[], Any]) -> int:
    """How many queries ``operation`` makes with no model audited (Django alone)."""
    with override_settings(AUDIT_MODELS_INCLUDE=[]), CaptureQueriesContext(connection) as ctx:
        operation()
    assert len(ctx.captured_queries) > 0
    return len(ctx.captured_queries)


def assert_same_queries_audited(
    django_assert_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
    make_operation: Callable[[], Callable[[], Any]],
    event_type: str,
) -> None:
    baseline = queries_without_auditing(make_operation())
    operation = make_operation()
    with (
        capture_events(MODEL_LOGGER) as events,
        django_capture_on_commit_callbacks(execute=True),
        django_assert_num_queries(baseline),
    ):
        operation()
    assert event_type in {e["event_type"] for e in events}


def test_create_adds_no_query(
    django_assert_num_queries: Any, django_capture_on_commit_callbacks: Any
) -> None:
    clinic = Clinic.objects.create(name="c")

    def make() -> Callable[[], Any]:
        return lambda: Patient.objects.create(name="Ada", clinic=clinic)

    assert_same_queries_audited(
        django_assert_num_queries, django_capture_on_commit_callbacks, make, "CREATE"
    )


@pytest.mark.parametrize("only", [(), ("name",)], ids=["loaded", "deferred"])
def test_update_with_diff_adds_no_query(
    only: tuple[str, ...],
    django_assert_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    patient = Patient.objects.create(name="Ada", notes="n")

    def make() -> Callable[[], Any]:
        loaded = Patient.objects.only(*only).get(pk=patient.pk) if only else (
            Patient.objects.get(pk=patient.pk)
        )

        def update() -> None:
            loaded.name = loaded.name + "!"
            loaded.save()

        return update

    assert_same_queries_audited(
        django_assert_num_queries, django_capture_on_commit_callbacks, make, "UPDATE"
    )


@pytest.mark.parametrize("model", [Note, Tag], ids=["no-relations", "m2m-relation"])
def test_instance_delete_adds_no_query(
    model: type[Note] | type[Tag],
    django_assert_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    counter = iter(range(100))

    def make() -> Callable[[], Any]:
        if model is Note:
            obj: Note | Tag = Note.objects.create(text="n")
        else:
            obj = Tag.objects.create(name=f"t{next(counter)}")
            obj.patients.add(Patient.objects.create(name="Ada"))
        return obj.delete

    assert_same_queries_audited(
        django_assert_num_queries, django_capture_on_commit_callbacks, make, "DELETE"
    )


def test_load_adds_no_query(
    django_assert_num_queries: Any, django_capture_on_commit_callbacks: Any
) -> None:
    Patient.objects.bulk_create([Patient(name=f"P{i}") for i in range(5)])

    def make() -> Callable[[], Any]:
        def load_and_save() -> None:
            patients = list(Patient.objects.select_related("clinic").order_by("name"))
            assert len(patients) == 5
            patients[0].save()  # an event, so the test cannot pass on a silent logger

        return load_and_save

    with override_settings(AUDIT_READ_MODELS=["testapp.Patient"]):
        assert_same_queries_audited(
            django_assert_num_queries, django_capture_on_commit_callbacks, make, "UPDATE"
        )


def test_values_reads_add_no_query(
    django_assert_num_queries: Any, django_capture_on_commit_callbacks: Any
) -> None:
    Patient.objects.bulk_create([Patient(name=f"P{i}") for i in range(5)])

    def make() -> Callable[[], Any]:
        def read_values() -> None:
            # Outside a scope: a READ event per evaluation, so the test sees one.
            assert len(list(Patient.objects.values("id", "name"))) == 5
            assert len(list(Patient.objects.values_list("ssn", flat=True))) == 5

        return read_values

    with override_settings(AUDIT_READ_MODELS=["testapp.Patient"]):
        assert_same_queries_audited(
            django_assert_num_queries, django_capture_on_commit_callbacks, make, "READ"
        )


def test_bulk_create_adds_no_query(
    django_assert_num_queries: Any, django_capture_on_commit_callbacks: Any
) -> None:
    def make() -> Callable[[], Any]:
        return lambda: Clinic.objects.bulk_create([Clinic(name=f"C{i}") for i in range(4)])

    assert_same_queries_audited(
        django_assert_num_queries, django_capture_on_commit_callbacks, make, "BULK_CREATE"
    )


def test_bulk_update_adds_no_query(
    django_assert_num_queries: Any, django_capture_on_commit_callbacks: Any
) -> None:
    Clinic.objects.bulk_create([Clinic(name=f"C{i}") for i in range(4)])

    def make() -> Callable[[], Any]:
        clinics = list(Clinic.objects.all())
        for c in clinics:
            c.name += "!"
        return lambda: Clinic.objects.bulk_update(clinics, ["name"], batch_size=3)

    assert_same_queries_audited(
        django_assert_num_queries, django_capture_on_commit_callbacks, make, "BULK_UPDATE"
    )


def test_queryset_update_adds_no_query(
    django_assert_num_queries: Any, django_capture_on_commit_callbacks: Any
) -> None:
    patient = Patient.objects.create(name="Ada")
    Visit.objects.create(patient=patient, reason="r", score=1)

    def make() -> Callable[[], Any]:
        return lambda: Visit.objects.filter(patient__name="Ada").update(score=F("score") + 1)

    assert_same_queries_audited(
        django_assert_num_queries, django_capture_on_commit_callbacks, make, "BULK_UPDATE"
    )


def test_unaudited_model_keeps_fast_delete(django_assert_num_queries: Any) -> None:
    Note.objects.bulk_create([Note(text=str(i)) for i in range(3)])
    # Django's fast path: one DELETE, no SELECT of the rows first.
    with override_settings(AUDIT_MODELS_EXCLUDE=["testapp.Note"]), django_assert_num_queries(1):
        Note.objects.all().delete()


def test_audited_model_delete_loads_rows_once(django_assert_num_queries: Any) -> None:
    Note.objects.bulk_create([Note(text=str(i)) for i in range(3)])
    # The deletion collector loads the rows (one SELECT) so each gets a DELETE event.
    with django_assert_num_queries(2):
        Note.objects.all().delete()


def test_no_migration_for_user_models() -> None:
    out = StringIO()
    # Exits with status 1 (SystemExit) if auditing had changed any model.
    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    assert "No changes detected" in out.getvalue()
