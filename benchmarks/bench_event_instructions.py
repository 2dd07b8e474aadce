"""Instructions per model event, stage by stage, without the ORM around it.

Run:  python benchmarks/bench_event_instructions.py [--kind create|update] [--events 1000]

Where the work of one audited save goes, to see what a change to the event
path saves. Inside one transaction, a worker sends Django's ``post_save`` for
``--events`` prebuilt ``Patient`` instances (fixed ids and timestamps) and
commits; under ``valgrind --tool=callgrind`` the count of a worker sending none
is subtracted, so what is left is per event: Django's signal dispatch, the
receiver, the deferral to commit, building the event and writing its line.
Each stage stops the path one step later (by replacing the next step with a
no-op), so its "step" column is what that step costs. SQLite, the published
LOGGING setup writing real files, ``PYTHONHASHSEED=0``: runs agree to about
1k instructions. It counts work, not time; the timed benchmarks say what a
save costs in a real project.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (stage, what it stops before). Each one runs one step more than the one before.
STAGES: tuple[tuple[str, str], ...] = (
    ("signal dispatch to a no-op receiver", "receiver"),
    ("+ receiver, audit logger disabled", "enabled"),
    ("+ values and actor taken (not deferred)", "dispatch"),
    ("+ deferred to commit (not built)", "build"),
    ("+ built (not formatted or written)", "write"),
    ("+ formatted and written: the whole path", ""),
)
_COLLECTED = re.compile(rb"Collected : (\d+)")


def worker(kind: str, events: int, stop: str, total: int) -> None:
    """Send ``post_save`` for ``events`` of ``total`` prebuilt instances in one transaction."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.bench_settings")
    import django

    django.setup()
    import logging

    from django.db import transaction
    from django.db.models import signals
    from tests.testapp.models import Clinic, Patient

    from activity_audit import diff, receivers
    from activity_audit import events as events_module
    from benchmarks.harness import migrate_own_database

    migrate_own_database()
    clinic = Clinic.objects.create(name="Bench clinic")
    if stop == "receiver":
        for signal, sender in receivers._connected:
            signal.disconnect(sender=sender, dispatch_uid=(receivers._UID, sender._meta.label))
        signals.post_save.connect(lambda **kwargs: None, sender=Patient, weak=False)
    elif stop == "enabled":
        logging.getLogger("audit.model").disabled = True
    elif stop == "dispatch":
        diff.dispatch_pending = lambda using, pending: None
    elif stop == "build":
        diff.emit_pending = lambda pending: None
    elif stop == "write":
        events_module.emit_many = lambda channel, items: list(items)  # type: ignore[assignment]
    # Built whatever the count, so that only the signals differ between workers.
    instances = []
    for i in range(total):
        patient = Patient(
            id=uuid.UUID(int=i + 1), name=f"Patient {i}", email=f"p{i}@example.org",
            ssn="123-45-6789", balance=Decimal("10.50"), birth_date=dt.date(1980, 1, 1),
            clinic=clinic, created_at=dt.datetime(2026, 1, 1, 12, 0, i % 60, tzinfo=dt.UTC),
        )
        if kind == "update":
            # As loaded from the database, then one field changed.
            patient.__dict__[diff.SNAPSHOT_KEY] = diff.current_values(
                diff.model_info(Patient), patient)  # type: ignore[arg-type]
            patient.name += " (renamed)"
        instances.append(patient)
    with transaction.atomic():
        for patient in instances[:events]:
            signals.post_save.send(sender=Patient, instance=patient, created=kind == "create",
                                   update_fields=None, raw=False, using="default")


def count(kind: str, events: int, stop: str, total: int) -> int:
    """Instructions of one worker run under callgrind."""
    scratch = tempfile.mkdtemp(prefix="bench-event-")
    try:
        env = {**os.environ, "BENCH_VARIANT": "on", "BENCH_DB": "sqlite", "BENCH_DIR": scratch,
               "BENCH_SLOT": "on", "PYTHONHASHSEED": "0"}
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             __file__, "--worker", kind, str(events), stop, str(total)],
            env=env, capture_output=True, check=False, cwd=ROOT,
        )
        found = _COLLECTED.search(done.stderr)
        if done.returncode != 0 or found is None:
            raise RuntimeError(f"{kind} {stop!r} failed:\n"
                               f"{done.stderr.decode(errors='replace')[-2000:]}")
        return int(found.group(1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("create", "update"), default="create")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing to count with", file=sys.stderr)
        return 2
    jobs = [(args.kind, n, stop, args.events) for _, stop in STAGES for n in (0, args.events)]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(jobs, pool.map(lambda job: count(*job), jobs), strict=True))
    print(f"Instructions per {args.kind} event, one transaction of {args.events}, SQLite\n")
    print("| stage | per event | step |")
    print("|---|---:|---:|")
    previous = 0.0
    for stage, stop in STAGES:
        per_event = (results[(args.kind, args.events, stop, args.events)]
                     - results[(args.kind, 0, stop, args.events)]) / args.events
        print(f"| {stage} | {per_event / 1e3:,.1f}k | {(per_event - previous) / 1e3:+,.1f}k |")
        previous = per_event
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(main(sys.argv[1:]))
