"""Command line: ``activity-audit verify PATH...`` (also ``python -m activity_audit``).

``main(argv) -> int`` as whitenoise does, so the console script, ``-m`` and
``manage.py audit_verify`` share one implementation. Exit status: 0 when every
chain is intact, 1 when a break was found (or nothing was chained), 2 on a
usage or read error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Protocol

from activity_audit.integrity import Report, verify_paths

__all__ = ["TextOutput", "add_verify_arguments", "main", "run_verify"]

KEY_ENV = "AUDIT_INTEGRITY_KEY"


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``verify`` options (shared with the management command)."""
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="log files; rotated siblings (.1, .2.gz, dated) are read too")
    parser.add_argument("--key-file", metavar="FILE",
                        help=f"file holding the integrity key (default: ${KEY_ENV})")
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")
    parser.add_argument("--closed", action="store_true",
                        help="no writer is running: a chain without end record is truncated")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")


class TextOutput(Protocol):
    """Where reports go: a text stream (or Django's ``OutputWrapper``)."""

    def write(self, text: str, /) -> Any: ...

    def flush(self) -> Any: ...

    def isatty(self) -> bool: ...


def _progress_printer(stream: TextOutput) -> Any:
    started = time.monotonic()
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.2 and done < total:
            return
        last[0] = now
        fraction = done / total if total else 1.0
        bar = "#" * int(fraction * 30)
        stream.write(f"\rverifying [{bar:<30}] {fraction:6.1%} {now - started:5.1f}s")
        stream.flush()

    return show


def _print_text(report: Report, out: TextOutput) -> None:
    for brk in report.breaks:
        where = f"{brk.file}:{brk.line}"
        chain = f" [chain {brk.chain_id[:8]} seq {brk.seq}]" if brk.chain_id else ""
        out.write(f"{where}: {brk.kind.value}: {brk.detail}{chain}\n")
    status = "OK" if report.ok else "BROKEN"
    if report.chains == 0:
        status = "NO CHAIN (integrity was not enabled for these lines)"
    out.write(f"{status}: {report.lines} lines in {len(report.files)} files, "
              f"{report.chains} chains, {len(report.breaks)} breaks")
    if report.open_chains:
        out.write(f", {len(report.open_chains)} chains still open (writers running?)")
    out.write("\n")


def run_verify(options: argparse.Namespace, *, key: str | bytes | None = None,
               stdout: TextOutput | None = None, stderr: TextOutput | None = None) -> int:
    """Verify as ``options`` say; ``key`` wins over ``--key-file`` and the environment."""
    out: TextOutput = stdout if stdout is not None else sys.stdout
    err: TextOutput = stderr if stderr is not None else sys.stderr
    try:
        if key is None and options.key_file:
            with open(options.key_file, "rb") as handle:
                key = handle.read().strip()
        if key is None:
            key = os.environ.get(KEY_ENV) or None
        if key is None:
            err.write(f"activity-audit: no key (--key-file or ${KEY_ENV}): "
                      "checking structure only, not MACs\n")
        progress = None
        if not options.no_progress and not options.json and err.isatty():
            progress = _progress_printer(err)
        report = verify_paths(options.paths, key, closed=options.closed, progress=progress)
        if progress is not None:
            err.write("\n")
    except (OSError, ValueError) as exc:
        err.write(f"activity-audit: {exc}\n")
        return 2
    if options.json:
        out.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        _print_text(report, out)
    return 0 if report.ok else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="activity-audit",
                                     description="django-activity-audit tools")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify the integrity chain of audit logs")
    add_verify_arguments(verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    try:
        options = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    return run_verify(options)
