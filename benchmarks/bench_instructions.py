"""Instructions per operation, auditing off versus on: a load-independent measure.

Run:  python benchmarks/bench_instructions.py [--reps 3] [--jobs 2]

Wall-clock ratios on a shared 2-core VM move by several percent between runs;
instruction counts (``valgrind --tool=callgrind``) do not depend on what else
the machine is doing. They still vary a little between runs of the same code
(random UUIDs, hash seeds -- fixed here with ``PYTHONHASHSEED=0`` --, when the
garbage collector runs): with one measured round, up to ~2% of a case and
tens of thousands of instructions of the "added" column were seen. For each case and
variant, a worker process runs the case's warmup and one untimed round, and
again with ``--reps`` more rounds; the difference divided by the operations of
those rounds is the count per operation, free of start-up and setup. SQLite
only (a server's work is in another process, which callgrind does not count).
It says what a change costs in work, not in time: use it beside the timed
benchmarks, not instead of them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import machine_description  # noqa: E402

#: (benchmark module, case) pairs measured.
CASES: tuple[tuple[str, str], ...] = (
    ("bench_models", "create (autocommit)"),
    ("bench_models", "create (one transaction)"),
    ("bench_models", "update with diff (one transaction)"),
    ("bench_models", "delete (one transaction)"),
    ("bench_requests", "GET list (JSON)"),
    ("bench_requests", "POST create (JSON)"),
    ("bench_requests", "PATCH (JSON)"),
)

_COLLECTED = re.compile(rb"Collected : (\d+)")


def _worker_env(module: str, variant: str, scratch: str) -> dict[str, str]:
    """The benchmark module's own worker environment, on SQLite, with a fixed hash seed."""
    env: dict[str, str] = importlib.import_module(f"benchmarks.{module}").worker_env(
        variant, "sqlite", scratch)
    env.setdefault("BENCH_SLOT", variant)
    env["PYTHONHASHSEED"] = "0"
    return env


def worker(module: str, case_name: str, reps: int) -> None:
    """Run ``case_name`` (warmup, one untimed round, ``reps`` rounds); print their ops."""
    cases = importlib.import_module(f"benchmarks.{module}").cases()
    case = cases[case_name]
    if case.warmup is not None:
        case.warmup()
    ops = 0
    for i in range(reps + 1):
        if case.setup is not None:
            case.setup()
        done = case.run()
        if i:
            ops += done
    print(json.dumps(ops))


def count(module: str, case: str, variant: str, reps: int) -> tuple[int, int]:
    """(instructions, operations) of one worker run under callgrind."""
    scratch = tempfile.mkdtemp(prefix="bench-instr-")
    try:
        env = {**os.environ, **_worker_env(module, variant, scratch)}
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
             sys.executable, __file__, "--worker", module, case, str(reps)],
            env=env, capture_output=True, check=False, cwd=ROOT,
        )
        found = _COLLECTED.search(done.stderr)
        if done.returncode != 0 or found is None:
            raise RuntimeError(f"{module} {case!r} ({variant}) failed:\n"
                               f"{done.stderr.decode(errors='replace')[-2000:]}")
        return int(found.group(1)), json.loads(done.stdout.splitlines()[-1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="measured rounds per worker")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing to count with", file=sys.stderr)
        return 2
    jobs = [(module, case, variant, reps) for module, case in CASES
            for variant in ("off", "on") for reps in (0, args.reps)]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(jobs, pool.map(lambda job: count(*job), jobs), strict=True))
    print(f"Instructions per operation, {machine_description()}, SQLite\n")
    print("| case | off | on | on/off | added per operation |")
    print("|---|---:|---:|---:|---:|")
    for module, case in CASES:
        per_op: dict[str, float] = {}
        for variant in ("off", "on"):
            base, _ = results[(module, case, variant, 0)]
            total, ops = results[(module, case, variant, args.reps)]
            per_op[variant] = (total - base) / ops
        off, on = per_op["off"], per_op["on"]
        print(f"| {case} | {off / 1e3:,.1f}k | {on / 1e3:,.1f}k | {on / off:.3f}x "
              f"| {(on - off) / 1e3:+,.1f}k |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(main(sys.argv[1:]))
