"""ORM cost of model auditing: the same project with auditing on versus off.

Run:  python benchmarks/bench_models.py [--db sqlite|postgres|both] [--reps 5] [--rounds 7]
            [--variants off,on,async,receivers]

Each repetition starts one worker process per variant, each on its own
database, and times every case round by round with the variants taking turns
(off on, on off, ...); a repetition's figure is the median of its rounds, and
the variants are paired per repetition (see ``benchmarks/harness.py``). With
auditing on, every event goes through the published LOGGING setup to real
files; ``async`` is the same with the ``get_async_*`` handlers. ``receivers``
is the project without the app, with a no-op receiver connected to each signal
the app listens to, on the same models: what Django itself charges for
signal-based capture (a delete then selects the cascaded rows instead of
deleting them in one statement), before any auditing work. The workers also
count queries per case; the run fails if they differ.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import (  # noqa: E402
    Case,
    django_ab_main,
    migrate_own_database,
    serve_django_worker,
)

WRITES = 200
BULK_ROWS = 25
BULK_CALLS = 40
LOAD_ROWS = 10_000


def cases() -> dict[str, Case]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.bench_settings")
    import django

    django.setup()
    from django.db import transaction
    from tests.testapp.models import Clinic, Patient

    migrate_own_database()
    if os.environ.get("BENCH_VARIANT") == "receivers":
        connect_noop_receivers()
    Patient.objects.all().delete()
    clinic = Clinic.objects.create(name="Bench clinic")

    def new_patient(i: int) -> Patient:
        return Patient(
            name=f"Patient {i}", email=f"p{i}@example.org", ssn="123-45-6789",
            balance=Decimal("10.50"), birth_date=dt.date(1980, 1, 1), clinic=clinic,
        )

    def create() -> int:
        for i in range(WRITES):
            new_patient(i).save()
        return WRITES

    def update() -> int:
        for p in list(Patient.objects.all()[:WRITES]):
            p.name += "x"
            p.balance += 1
            p.save()
        return WRITES

    def delete() -> int:
        objs = list(Patient.objects.all()[:WRITES])
        for p in objs:
            p.delete()
        return len(objs)

    def atomic(fn: Callable[[], int]) -> Callable[[], int]:
        def run() -> int:
            with transaction.atomic():
                return fn()

        return run

    def bulk_create() -> int:
        for c in range(BULK_CALLS):
            Patient.objects.bulk_create([new_patient(c * BULK_ROWS + i) for i in range(BULK_ROWS)])
        return BULK_CALLS

    def bulk_update() -> int:
        objs = list(Patient.objects.all()[: BULK_ROWS * BULK_CALLS])
        for c in range(BULK_CALLS):
            chunk = objs[c * BULK_ROWS : (c + 1) * BULK_ROWS]
            for p in chunk:
                p.name += "y"
            Patient.objects.bulk_update(chunk, ["name"])
        return BULK_CALLS

    def load() -> int:
        return len(list(Patient.objects.all())) // LOAD_ROWS

    def refill() -> None:
        Patient.objects.all().delete()
        Patient.objects.bulk_create([new_patient(i) for i in range(WRITES)])

    def fill_for_load() -> None:
        Patient.objects.all().delete()
        for start in range(0, LOAD_ROWS, 1000):
            Patient.objects.bulk_create([new_patient(start + i) for i in range(1000)])

    return {
        "create (autocommit)": Case(create),
        # warmup=refill: the rows to update, whichever case ran before.
        "update with diff (autocommit)": Case(update, warmup=refill),
        "delete (autocommit)": Case(delete, setup=refill),
        "create (one transaction)": Case(atomic(create)),
        "update with diff (one transaction)": Case(atomic(update), warmup=refill),
        "delete (one transaction)": Case(atomic(delete), setup=refill),
        "bulk_create 25 rows": Case(bulk_create),
        "bulk_update 25 rows": Case(bulk_update),
        "load 10,000 rows": Case(load, warmup=fill_for_load),
    }


def _noop_receiver(**kwargs: object) -> None:
    pass


def connect_noop_receivers() -> None:
    """A no-op receiver on each signal the app connects, for the models it would audit."""
    from django.apps import apps
    from django.db.models import signals

    from activity_audit import diff

    for model in apps.get_models():
        if not diff.is_audited(model):
            continue
        signals.post_save.connect(_noop_receiver, sender=model, weak=False)
        signals.post_delete.connect(_noop_receiver, sender=model, weak=False)
        for field in model._meta.many_to_many:
            signals.m2m_changed.connect(_noop_receiver, sender=field.remote_field.through,
                                        weak=False)


def worker_env(variant: str, db: str, scratch: str) -> dict[str, str]:
    """The environment of a worker of ``variant`` (see ``bench_settings``)."""
    return {"BENCH_VARIANT": variant, "BENCH_DB": db, "BENCH_DIR": scratch}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        serve_django_worker(cases, worker_env(*sys.argv[2:5]))
    else:
        sys.exit(django_ab_main(__file__, sys.argv[1:], title="Model auditing",
                                unit="seconds per operation, auditing off vs on"))
