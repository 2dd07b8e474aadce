"""What the file handler's "is this still the live file?" check costs inside autocommit saves.

Run:  python benchmarks/bench_write_check.py [--db sqlite|postgres|both] [--rounds 60] [--saves 50]

Before each write, :class:`~activity_audit.handlers.AuditFileHandler` checks
that its path still names the file it has open (another process may have
rotated it, logrotate renamed it, someone removed it). One process, audited
autocommit creates, the variants taking turns round by round:

* ``off``: the model receivers disconnected (no event, no line);
* ``file``: the check asks the log file (``stat`` of its path), as the handler did until 2026-12-07;
* ``directory``: the check asks the log directory, as shipped;
* ``bare``: no check and no lock, a plain ``os.write``: the floor of writing a line.

Each save's line is written as it commits, right after the database's own
commit flushed the filesystem: that is where asking the file being appended
to costs far more than the same ``stat`` measured alone.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import machine_description, migrate_own_database  # noqa: E402

VARIANTS = ("off", "file", "directory", "bare")


def worker(rounds: int, saves: int) -> dict[str, list[float]]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.bench_settings")
    import django

    django.setup()
    from tests.testapp.models import Clinic, Patient

    from activity_audit import handlers, receivers

    migrate_own_database()
    Patient.objects.all().delete()
    clinic = Clinic.objects.create(name="Bench clinic")
    shared = handlers._SharedFile
    shipped_check = shared._still_ours
    shipped_write = shared.write

    def bare_write(self: Any, data: bytes) -> None:
        if self.fd < 0:
            self._open()
        os.write(self.fd, data)

    def use(variant: str) -> None:
        receivers.reconnect()
        shared._still_ours = shipped_check  # type: ignore[method-assign]
        shared.write = shipped_write  # type: ignore[method-assign]
        if variant == "off":
            for signal, sender in receivers._connected:
                signal.disconnect(sender=sender, dispatch_uid=(receivers._UID, sender._meta.label))
        elif variant == "file":
            shared._still_ours = shared._is_current  # type: ignore[method-assign]
        elif variant == "bare":
            shared.write = bare_write  # type: ignore[method-assign]

    def run() -> float:
        start = time.perf_counter()
        for i in range(saves):
            Patient(name=f"Patient {i}", email=f"p{i}@example.org", ssn="123-45-6789",
                    balance=Decimal("10.50"), birth_date=dt.date(1980, 1, 1),
                    clinic=clinic).save()
        return (time.perf_counter() - start) / saves

    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for variant in VARIANTS:  # warm up every path, and let the log directory settle
        use(variant)
        run()
    time.sleep(1.1)
    for r in range(rounds):
        for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
            use(variant)
            samples[variant].append(run())
    return samples


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--saves", type=int, default=50)
    args = parser.parse_args(argv)
    print(f"Write check in autocommit creates, {dt.date.today()}, {machine_description()}\n")
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        with tempfile.TemporaryDirectory(prefix="audit-bench-") as scratch:
            env = {**os.environ, "BENCH_VARIANT": "on", "BENCH_DB": db, "BENCH_DIR": scratch,
                   "BENCH_SLOT": "check"}
            done = subprocess.run(
                [sys.executable, __file__, "--worker", str(args.rounds), str(args.saves)],
                env=env, capture_output=True, text=True, check=True, cwd=ROOT,
            )
        samples: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
        off = statistics.median(samples["off"])
        print(f"**{db}: seconds per audited create ({args.rounds} rounds of {args.saves})**\n")
        print("| variant | median | added to off |")
        print("|---|---:|---:|")
        for variant in VARIANTS:
            median = statistics.median(samples[variant])
            print(f"| {variant} | {median * 1e6:.1f} µs | {(median - off) * 1e6:+.1f} µs |")
        print()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        with contextlib.redirect_stdout(io.StringIO()):
            result = worker(int(sys.argv[2]), int(sys.argv[3]))
        print(json.dumps(result))
    else:
        sys.exit(main(sys.argv[1:]))
