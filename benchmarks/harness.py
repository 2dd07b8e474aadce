"""Interleaved A/B benchmark harness shared by every benchmark in this folder.

A benchmark provides a *worker command*: a subprocess that sets up one variant
(for example Django with auditing on, or off), times each case and prints one
JSON object ``{"case": seconds_per_op, ...}`` as its last stdout line. The
harness runs the variants alternately -- A B, B A, A B, ... -- so drift on a
shared machine hits both sides alike, pairs the results of each repetition into
a ratio, and reports medians with their min-max.

Usage::

    results = run_interleaved(lambda variant: [sys.executable, "worker.py", variant],
                              variants=("off", "on"), reps=7)
    rows = summarize(results, baseline="off")
    print(markdown_table(rows, title="ORM writes, SQLite"))
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Case",
    "Row",
    "django_ab_main",
    "machine_description",
    "markdown_table",
    "migrate_own_database",
    "per_op",
    "repeated",
    "run_interleaved",
    "run_lockstep",
    "serve_django_worker",
    "summarize",
]

Results = dict[str, dict[str, list[float]]]  # case -> variant -> seconds per op, one per rep


def run_interleaved(
    command: Callable[[str], Sequence[str]],
    variants: Sequence[str] = ("off", "on"),
    reps: int = 7,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    verbose: bool = True,
) -> Results:
    """Run ``command(variant)`` ``reps`` times per variant, alternating the order."""
    results: Results = {}
    full_env = {**os.environ, **(env or {})}
    for rep in range(reps):
        order = list(variants) if rep % 2 == 0 else list(reversed(variants))
        for variant in order:
            proc = subprocess.run(
                list(command(variant)), capture_output=True, text=True, env=full_env, cwd=cwd,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(
                    f"worker {variant!r} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
                )
            timings: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
            for case, seconds in timings.items():
                results.setdefault(case, {}).setdefault(variant, []).append(seconds)
        if verbose:
            print(f"  rep {rep + 1}/{reps} done", file=sys.stderr, flush=True)
    return results


@dataclass(frozen=True)
class Row:
    case: str
    variant: str
    median: float
    ratio_median: float
    ratio_min: float
    ratio_max: float


def summarize(results: Results, baseline: str = "off") -> list[Row]:
    """Medians per variant and paired per-repetition ratios against ``baseline``."""
    rows: list[Row] = []
    for case, by_variant in results.items():
        base = by_variant[baseline]
        for variant, times in by_variant.items():
            ratios = [t / b for t, b in zip(times, base, strict=True)]
            rows.append(
                Row(case, variant, statistics.median(times), statistics.median(ratios),
                    min(ratios), max(ratios))
            )
    return rows


def _fmt_time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def machine_description() -> str:
    import django

    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.system()} {platform.machine()} ({cpu}), {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Django {django.get_version()}"
    )


def markdown_table(rows: Sequence[Row], title: str, baseline: str = "off") -> str:
    """A Markdown table: case, baseline median, variant median, ratio median (min-max)."""
    by_case: dict[str, dict[str, Row]] = {}
    for row in rows:
        by_case.setdefault(row.case, {})[row.variant] = row
    variants = [v for v in dict.fromkeys(r.variant for r in rows) if v != baseline]
    lines = [f"**{title}**", ""]
    header = f"| case | {baseline} (median) |"
    sep = "|---|---:|"
    for v in variants:
        header += f" {v} (median) | {v}/{baseline} ratio median (min-max) |"
        sep += "---:|---:|"
    lines += [header, sep]
    for case, per in by_case.items():
        line = f"| {case} | {_fmt_time(per[baseline].median)} |"
        for v in variants:
            r = per[v]
            line += (f" {_fmt_time(r.median)} | {r.ratio_median:.3f}x "
                     f"({r.ratio_min:.3f}-{r.ratio_max:.3f}) |")
        lines.append(line)
    return "\n".join(lines)


# -- Django A/B benchmarks: the same project with auditing off and on ---------------------
#
# Both variants run at once as long-lived worker processes, each on its own
# database, and take turns round by round (off on, on off, ...): a round of one
# variant is timed next to a round of the other, so drift on a shared machine
# (another VM's load, CPU frequency, the disk's cache) falls on both within
# milliseconds instead of seconds apart. Each repetition starts a fresh pair of
# processes, so what differs between processes (memory layout, hash seeds)
# shows up between repetitions, in the reported min-max.


@dataclass(frozen=True)
class Case:
    """One benchmark case of a worker: ``run`` returns its operation count."""

    run: Callable[[], int]
    #: Untimed, before each round (for example, refill the rows a delete removes).
    setup: Callable[[], None] | None = None
    #: Untimed, before the first round of a repetition.
    warmup: Callable[[], object] | None = None


def migrate_own_database() -> None:
    """Create this worker's tables afresh in its own database (``BENCH_SLOT`` in the settings).

    On PostgreSQL that is the schema ``settings.BENCH_PG_SCHEMA``, dropped and
    created here; on SQLite the file is removed first. Every worker starts from
    the same empty tables: reused ones carry what earlier runs left (on
    PostgreSQL, a table that took 280,000 deleted rows is scanned tens of
    megabytes long until a vacuum), and that differs between variants.
    """
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor == "postgresql":
        schema = settings.BENCH_PG_SCHEMA
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            cursor.execute(f'CREATE SCHEMA "{schema}"')
    else:
        connection.close()
        name = str(connection.settings_dict["NAME"])
        for path in (name, f"{name}-wal", f"{name}-shm", f"{name}-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    call_command("migrate", verbosity=0, run_syncdb=True)


def serve_django_worker(build: Callable[[], dict[str, Case]], env: Mapping[str, str]) -> None:
    """Worker side: build the cases with ``env`` set, then answer the driver.

    Reads one command per stdin line -- a case name (run one round, answer its
    seconds per operation), ``queries`` (answer the queries each case makes,
    counted over one more untimed round) or ``quit`` -- and answers with one
    JSON line on the real stdout. Anything the cases print is swallowed.
    """
    os.environ.update(env)
    reply = sys.__stdout__
    assert reply is not None
    with contextlib.redirect_stdout(io.StringIO()):
        cases = build()
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        # The debug log (which also records COMMIT and ROLLBACK, unlike an execute
        # wrapper) keeps its last 9,000 entries by default; other packages' cases
        # make more.
        connection.queries_limit = sys.maxsize
        connection.queries_log = collections.deque(maxlen=None)
    print(json.dumps(list(cases)), file=reply, flush=True)
    warmed: set[str] = set()
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            return
        with contextlib.redirect_stdout(io.StringIO()):
            if command == "queries":
                counts: dict[str, int] = {}
                for name, case in cases.items():
                    if case.setup is not None:
                        case.setup()
                    with CaptureQueriesContext(connection) as ctx:
                        case.run()
                    counts[name] = len(ctx.captured_queries)
                answer: Any = counts
            else:
                case = cases[command]
                if case.warmup is not None and command not in warmed:
                    warmed.add(command)
                    case.warmup()
                if case.setup is not None:
                    case.setup()
                start = time.perf_counter()
                ops = case.run()
                answer = (time.perf_counter() - start) / ops
        print(json.dumps(answer), file=reply, flush=True)


class _Worker:
    """The driver's end of one :func:`serve_django_worker` process."""

    def __init__(self, command: Sequence[str], cwd: str) -> None:
        self.proc = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=cwd
        )

    def ask(self, command: str) -> Any:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        if command:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.proc.args!r} exited ({self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
        if self.proc.wait(timeout=60) != 0:
            raise RuntimeError(f"worker {self.proc.args!r} failed ({self.proc.returncode})")


def run_lockstep(
    command: Callable[[str], Sequence[str]],
    variants: Sequence[str] = ("off", "on"),
    reps: int = 5,
    rounds: int = 7,
    cwd: str = ".",
    verbose: bool = True,
) -> tuple[Results, dict[str, dict[str, int]]]:
    """Time every case ``rounds`` times per repetition, the variants taking turns.

    Returns, per case and variant, the median seconds per operation of each
    repetition, and each variant's query counts per case (from the first
    repetition).
    """
    results: Results = {}
    queries: dict[str, dict[str, int]] = {}
    for rep in range(reps):
        workers = {v: _Worker(command(v), cwd) for v in variants}
        try:
            # Each worker announces its cases once ready (both set up before timing).
            names, *others = [w.ask("") for w in workers.values()]
            if any(other != names for other in others):
                raise RuntimeError(f"the variants' cases differ: {names} vs {others}")
            for name in names:
                samples: dict[str, list[float]] = {v: [] for v in variants}
                for r in range(rounds):
                    order = list(variants) if (rep + r) % 2 == 0 else list(reversed(variants))
                    for v in order:
                        samples[v].append(workers[v].ask(name))
                for v in variants:
                    results.setdefault(name, {}).setdefault(v, []).append(
                        statistics.median(samples[v]))
            if rep == 0:
                queries = {v: w.ask("queries") for v, w in workers.items()}
        finally:
            for w in workers.values():
                w.close()
        if verbose:
            print(f"  rep {rep + 1}/{reps} done", file=sys.stderr, flush=True)
    return results, queries


def django_ab_main(script: str, argv: Sequence[str], *, title: str, unit: str,
                   unmatched_queries: Collection[str] = (),
                   prepare: Callable[[Sequence[str]], None] | None = None) -> int:
    """Driver side: ``--db sqlite|postgres|both --reps N --rounds N``; tables per database.

    Runs ``script --worker VARIANT DB SCRATCH`` for ``off`` and ``on`` in lockstep
    (:func:`run_lockstep`) and fails (exit 1) when the variants' query counts differ,
    except those of ``unmatched_queries`` (other packages), which are reported.
    ``prepare`` gets the variants before any worker starts (to install what they need).
    """
    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--variants", default="off,on",
                        help="comma-separated, baseline first: off, on (the published "
                             "synchronous handlers), async (the get_async_* handlers), "
                             "receivers (no app, no-op receivers; bench_models); "
                             "none, v1, easyaudit, auditlog (bench_requests)")
    args = parser.parse_args(argv)
    variants = tuple(args.variants.split(","))
    if prepare is not None:
        prepare(variants)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.bench_settings")
    root = str(Path(script).resolve().parent.parent)
    print(f"{title}, {dt.date.today()}, {machine_description()}\n")
    status = 0
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        with tempfile.TemporaryDirectory(prefix="audit-bench-") as scratch:
            def command(variant: str, db: str = db, scratch: str = scratch) -> list[str]:
                return [sys.executable, script, "--worker", variant, db, scratch]

            results, counts = run_lockstep(command, variants=variants, reps=args.reps,
                                           rounds=args.rounds, cwd=root)
            print(markdown_table(summarize(results, baseline=variants[0]),
                                 title=f"{db}: {unit}", baseline=variants[0]))
            ours = [v for v in variants if v not in unmatched_queries]
            same = all(counts[v] == counts[ours[0]] for v in ours)
            print(f"\nqueries per case: {json.dumps(counts[ours[-1]])}; "
                  f"identical in every variant ({', '.join(ours)}): {same}\n")
            for v in variants:
                if v in unmatched_queries:
                    print(f"queries per case, {v}: {json.dumps(counts[v])}\n")
            if not same:
                print(json.dumps(counts, indent=1))
                status = 1
    return status


def per_op(run: Callable[[], int], rounds: int = 3,
           setup: Callable[[], None] | None = None) -> float:
    """Median over ``rounds`` of elapsed seconds / operations (``run`` returns its count).

    ``setup`` runs before each round, untimed.
    """
    samples = []
    for _ in range(rounds):
        if setup is not None:
            setup()
        start = time.perf_counter()
        ops = run()
        samples.append((time.perf_counter() - start) / ops)
    return statistics.median(samples)


def repeated(fn: Callable[[], Any], times: int) -> Callable[[], int]:
    """``fn`` called ``times`` times, as a :func:`per_op` run."""
    def run() -> int:
        for _ in range(times):
            fn()
        return times

    return run
