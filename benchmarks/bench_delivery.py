"""Delivery benchmark: the calling thread's cost, the full path to disk, 4 processes, verify.

Run: ``python benchmarks/bench_delivery.py [--reps N]``. Prints Markdown tables.

Variants of one process emitting audit events through ``emit()``:

* ``format``: a handler that only formats (build + format, no I/O): the baseline.
* ``sync``: :class:`AuditFileHandler` in the calling thread.
* ``async``: the same file behind the queue (``get_async_audit_handler``).
* ``chained``: ``async`` with an integrity key.

``caller`` is the time per event on the calling thread; ``full`` includes
draining everything to disk (handler closed). ``mp-*`` cases run 4 processes
x 25,000 ~400-byte lines with size rotation on and report wall time per line
(all processes together). ``verify`` is the verifier over 1,000,000 chained lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (
    machine_description,
    markdown_table,
    run_interleaved,
    summarize,
)

EVENTS = 50_000
MP_PROCESSES = 4
MP_EVENTS = 25_000
VERIFY_LINES = 1_000_000
LOST_CASE = "lines lost"


def _event(i: int) -> dict[str, Any]:
    # ~400 bytes as a line, like a typical UPDATE event.
    return {"model": "Patient", "app_label": "clinic", "event_type": "UPDATE",
            "instance_id": f"6f77c1e2-0000-4000-8000-{i:012d}",
            "changes": {"status": {"old": "admitted", "new": "discharged"}},
            "user_id": "cae8e5b0-1111-4000-8000-000000000001",
            "user_info": {"email": "nurse@example.org"},
            "request_id": "3c9d1a7e-2222-4000-8000-000000000002",
            "service_name": "clinic", "extra": {}}


def _configure(variant: str, log_dir: str, **extra: Any) -> logging.Handler:
    from activity_audit import get_async_audit_handler, get_audit_handler

    handler: dict[str, Any]
    if variant == "format":
        handler = {"()": "benchmarks.bench_delivery.FormatOnlyHandler"}
    elif variant == "sync":
        handler = get_audit_handler(log_dir=log_dir, **extra)
    elif variant == "async":
        handler = get_async_audit_handler(log_dir=log_dir, **extra)
    elif variant == "chained":
        handler = get_async_audit_handler(log_dir=log_dir, integrity_key="bench", **extra)
    elif variant == "stdlib":
        handler = {"class": "logging.handlers.RotatingFileHandler",
                   "filename": os.path.join(log_dir, "audit.log"),
                   "formatter": "audit", **extra}
    elif variant == "clh":
        handler = {"class": "concurrent_log_handler.ConcurrentRotatingFileHandler",
                   "filename": os.path.join(log_dir, "audit.log"),
                   "formatter": "audit", **extra}
    else:
        raise SystemExit(f"unknown variant {variant}")
    logging.config.dictConfig({
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"audit": {"()": "activity_audit.formatters.AuditFormatter"}},
        "handlers": {"h": handler},
        "loggers": {"audit.model": {"handlers": ["h"], "level": "AUDIT", "propagate": False}},
    })
    return logging.getLogger("audit.model").handlers[0]


class FormatOnlyHandler(logging.Handler):
    """Formats like the file handler does, writes nothing."""

    def __init__(self) -> None:
        from activity_audit.formatters import AuditFormatter

        super().__init__()
        self.setFormatter(AuditFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record).encode()


def worker_single(variant: str) -> dict[str, float]:
    from activity_audit.events import emit

    with tempfile.TemporaryDirectory() as log_dir:
        handler = _configure(variant, log_dir, maxBytes=10 * 1024 * 1024, backupCount=50)
        events = [_event(i) for i in range(EVENTS)]
        start = time.perf_counter()
        for event in events:
            emit("audit.model", "UPDATE event for Patient", event)
        caller = time.perf_counter() - start
        handler.close()
        full = time.perf_counter() - start
    return {"caller per event": caller / EVENTS, "full path per event": full / EVENTS}


def worker_mp_child(variant: str, log_dir: str) -> None:
    from activity_audit.events import emit

    handler = _configure(variant, log_dir, maxBytes=4 * 1024 * 1024, backupCount=10_000)
    for i in range(MP_EVENTS):
        emit("audit.model", "UPDATE event for Patient", _event(i))
    handler.close()


def worker_mp(variant: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as log_dir:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, __file__, "mp-child", variant, log_dir])
                 for _ in range(MP_PROCESSES)]
        for proc in procs:
            if proc.wait() != 0:
                raise SystemExit(f"child failed: {variant}")
        wall = time.perf_counter() - start
        lines = 0
        for name in os.listdir(log_dir):
            if name.startswith("audit.log"):
                with open(os.path.join(log_dir, name), "rb") as handle:
                    # Events only: a chain's start/end records are extra lines.
                    lines += sum(1 for line in handle if b'"audit.model"' in line)
    total = MP_PROCESSES * MP_EVENTS
    print(json.dumps({"variant": variant, "lines": lines, "expected": total}), file=sys.stderr)
    return {"4 processes, per line (wall)": wall / total,
            LOST_CASE: float(total - lines)}


def worker_verify(variant: str) -> dict[str, float]:
    from activity_audit.integrity import Chain, verify_paths

    path = Path(tempfile.gettempdir()) / "activity_audit_bench_verify" / "audit.log"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        from activity_audit import _json

        chain = Chain("bench")
        with open(path.with_suffix(".tmp"), "wb") as handle:
            batch: list[bytes] = []
            for i in range(VERIFY_LINES):
                batch.append(_json.dumps({"timestamp": "2025-08-16 17:06:32.403",
                                          "level": "AUDIT", "name": "audit.model",
                                          "message": "UPDATE event for Patient", **_event(i)}))
                if len(batch) == 10_000:
                    handle.write(b"\n".join(chain.seal_lines(batch)) + b"\n")
                    batch = []
            handle.write(chain.end() + b"\n")
        os.replace(path.with_suffix(".tmp"), path)
    start = time.perf_counter()
    report = verify_paths([path], "bench" if variant == "key" else None, closed=True)
    elapsed = time.perf_counter() - start
    if report.breaks:
        raise SystemExit(f"unexpected breaks: {report.breaks[:3]}")
    return {f"verify {VERIFY_LINES:,} lines": elapsed}


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "mp-child":
        worker_mp_child(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) >= 2 and sys.argv[1] == "worker":
        kind, variant = sys.argv[2], sys.argv[3]
        fn = {"single": worker_single, "mp": worker_mp, "verify": worker_verify}[kind]
        print(json.dumps(fn(variant)))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    options = parser.parse_args()
    me = [sys.executable, __file__, "worker"]

    single = run_interleaved(lambda v: [*me, "single", v],
                             variants=("format", "sync", "async", "chained"), reps=options.reps)
    mp_variants = ["stdlib", "sync", "async", "chained"]
    try:
        import concurrent_log_handler  # noqa: F401

        mp_variants.append("clh")
    except ImportError:
        pass
    mp = run_interleaved(lambda v: [*me, "mp", v], variants=mp_variants, reps=options.reps)
    # A count, not a time: kept out of the ratio table (the baseline may lose none).
    lost = mp.pop(LOST_CASE)
    verify = run_interleaved(lambda v: [*me, "verify", v], variants=("nokey", "key"),
                             reps=max(options.reps // 2, 2))

    print(f"Machine: {machine_description()}\n")
    single_rows = summarize(single, baseline="format")
    verify_rows = summarize(verify, baseline="nokey")
    print(markdown_table(single_rows, title=f"One process, {EVENTS:,} events",
                         baseline="format"))
    print()
    rows = summarize(mp, baseline="stdlib")
    print(markdown_table(rows,
                         title="4 processes x 25,000 lines, size rotation (stdlib loses lines)",
                         baseline="stdlib"))
    print()
    print(markdown_table(verify_rows, title="Verify", baseline="nokey"))
    print()
    print("**Derived** (medians)\n")
    print("| measure | value |\n|---|---:|")
    med = {(r.case, r.variant): r.median for r in single_rows}
    for variant in ("sync", "async", "chained"):
        full = med[("full path per event", variant)]
        print(f"| {variant}: events/s, one process (build → format → disk) | {1 / full:,.0f} |")
    added = med[("caller per event", "async")] - med[("caller per event", "format")]
    print(f"| async: added on the calling thread vs format-only | {added * 1e6:.1f} µs |")
    mp_med = {(r.case, r.variant): r.median for r in rows}
    for variant in mp_variants:
        per_line = mp_med[("4 processes, per line (wall)", variant)]
        lost_median = statistics.median(lost[variant])
        print(f"| {variant}: 4-process lines/s (lines lost, median) | "
              f"{1 / per_line:,.0f} ({lost_median:.0f}) |")
    for r in verify_rows:
        print(f"| verify ({r.variant}): lines/s | {VERIFY_LINES / r.median:,.0f} |")


if __name__ == "__main__":
    main()
