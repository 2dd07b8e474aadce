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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Row",
    "django_ab_main",
    "machine_description",
    "markdown_table",
    "per_op",
    "repeated",
    "run_django_worker",
    "run_interleaved",
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

#: What a Django worker returns: seconds per operation and queries per case.
Payload = dict[str, dict[str, Any]]


def run_django_worker(worker: Callable[[], Payload], env: Mapping[str, str],
                      scratch: str, variant: str) -> None:
    """Worker side: run ``worker`` with ``env`` set, keep its query counts, print timings.

    Anything the worker prints is swallowed, so the last stdout line is the timings.
    """
    os.environ.update(env)
    with contextlib.redirect_stdout(io.StringIO()):
        payload = worker()
    (Path(scratch) / f"queries-{variant}.json").write_text(json.dumps(payload["queries"]))
    print(json.dumps(payload["timings"]))


def django_ab_main(script: str, argv: Sequence[str], *, title: str, unit: str) -> int:
    """Driver side: ``--db sqlite|postgres|both --reps N``; tables per database.

    Runs ``script --worker VARIANT DB SCRATCH`` interleaved for ``off`` and ``on``
    and fails (exit 1) when the variants' query counts differ.
    """
    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.bench_settings")
    root = str(Path(script).resolve().parent.parent)
    print(f"{title}, {dt.date.today()}, {machine_description()}\n")
    status = 0
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        with tempfile.TemporaryDirectory(prefix="audit-bench-") as scratch:
            def command(variant: str, db: str = db, scratch: str = scratch) -> list[str]:
                return [sys.executable, script, "--worker", variant, db, scratch]

            results = run_interleaved(command, variants=("off", "on"), reps=args.reps, cwd=root)
            print(markdown_table(summarize(results, baseline="off"),
                                 title=f"{db}: {unit}"))
            counts = {v: json.loads((Path(scratch) / f"queries-{v}.json").read_text())
                      for v in ("off", "on")}
            same = counts["off"] == counts["on"]
            print(f"\nqueries per case: {json.dumps(counts['on'])}; "
                  f"identical with auditing on and off: {same}\n")
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
