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

import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Row", "machine_description", "markdown_table", "run_interleaved", "summarize"]

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
