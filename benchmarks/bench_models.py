"""ORM cost of model auditing: the same project with auditing on versus off.

Run:  python benchmarks/bench_models.py [--db sqlite|postgres|both] [--reps 9]

Each repetition runs one worker process per variant, alternating the order
(on/off, off/on, ...). A worker times every case a few rounds and reports the
median seconds per operation; the harness pairs the variants per repetition.
With auditing on, every event goes through the published LOGGING setup to real
files. The worker also counts queries per case and fails if the variants differ.
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
    Payload,
    django_ab_main,
    per_op,
    run_django_worker,
)

WRITES = 200
BULK_ROWS = 25
BULK_CALLS = 40
LOAD_ROWS = 10_000
ROUNDS = 3


def worker() -> Payload:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.bench_settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from tests.testapp.models import Clinic, Patient

    call_command("migrate", verbosity=0, run_syncdb=True)
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

    timings: dict[str, float] = {}
    queries: dict[str, int] = {}

    def measure(name: str, fn: Callable[[], int], reset: Callable[[], None] | None = None) -> None:
        # Timed without query capture (it costs both variants time per query);
        # then one more round, untimed, counts the queries.
        timings[name] = per_op(fn, ROUNDS, setup=reset)
        if reset:
            reset()
        with CaptureQueriesContext(connection) as ctx:
            fn()
        queries[name] = len(ctx.captured_queries)

    def refill() -> None:
        Patient.objects.all().delete()
        Patient.objects.bulk_create([new_patient(i) for i in range(WRITES)])

    measure("create (autocommit)", create)
    measure("update with diff (autocommit)", update)
    measure("delete (autocommit)", delete, reset=refill)
    measure("create (one transaction)", atomic(create))
    measure("update with diff (one transaction)", atomic(update))
    measure("delete (one transaction)", atomic(delete), reset=refill)
    measure("bulk_create 25 rows", bulk_create)
    measure("bulk_update 25 rows", bulk_update)
    Patient.objects.all().delete()
    for start in range(0, LOAD_ROWS, 1000):
        Patient.objects.bulk_create([new_patient(start + i) for i in range(1000)])
    measure("load 10,000 rows", load)
    Patient.objects.all().delete()
    return {"timings": timings, "queries": queries}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        variant, db, scratch = sys.argv[2:5]
        run_django_worker(worker, {"BENCH_VARIANT": variant, "BENCH_DB": db,
                                   "BENCH_DIR": scratch}, scratch, variant)
    else:
        sys.exit(django_ab_main(__file__, sys.argv[1:], title="Model auditing",
                                unit="seconds per operation, auditing off vs on"))
