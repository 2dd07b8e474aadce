"""Delivery across real processes: concurrent writers, exit flush, fork."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from activity_audit.integrity import log_files, verify_paths

# Configures the package's handlers through dictConfig, then emits events.
WORKER = r"""
import json, logging, logging.config, os, signal, sys, time
from activity_audit import get_async_audit_handler, get_audit_handler
from activity_audit.events import emit

mode, count, log_dir, rotation, finish = sys.argv[1:6]
key = os.environ.get("TEST_KEY") or None
helper = get_async_audit_handler if mode == "async" else get_audit_handler
options = {"log_dir": log_dir, "backupCount": 100000, "compress": True}
if rotation == "time":
    options.update(when="S", maxBytes=0, utc=True)
else:
    options.update(maxBytes=int(rotation))
if key:
    options["integrity_key"] = key
logging.config.dictConfig({
    "version": 1, "disable_existing_loggers": False,
    "handlers": {"audit": helper(**options)},
    "loggers": {"audit.model": {"handlers": ["audit"], "level": "AUDIT", "propagate": False}},
})
if finish == "sigterm":
    # What gunicorn and Django's servers do: SIGTERM becomes a normal exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
tag = os.environ.get("TEST_TAG", str(os.getpid()))
pad = "x" * 200
for i in range(int(count)):
    emit("audit.model", "UPDATE event for Patient",
         {"model": "Patient", "event_type": "UPDATE", "instance_id": f"{tag}-{i}",
          "changes": {"note": {"old": pad, "new": i}}})
    if rotation == "time" and i % (int(count) // 3) == 0:
        # Each third of the events in a later second: at least two rotations, whatever
        # the machine's speed.
        time.sleep(1.05 - time.time() % 1)
if finish == "exit":
    sys.exit(3)
if finish == "sigterm":
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
    sys.exit(99)  # not reached: SIGTERM ended the process
"""

FORK_WORKER = r"""
import logging, logging.config, os, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads
from activity_audit import get_async_audit_handler
from activity_audit.events import emit

log_dir = sys.argv[1]
logging.config.dictConfig({
    "version": 1, "disable_existing_loggers": False,
    "handlers": {"audit": get_async_audit_handler(log_dir=log_dir, integrity_key="k")},
    "loggers": {"audit.model": {"handlers": ["audit"], "level": "AUDIT", "propagate": False}},
})

def burst(tag, n):
    for i in range(n):
        emit("audit.model", "CREATE", {"event_type": "CREATE", "instance_id": f"{tag}-{i}"})

burst("parent-before", 3000)  # still in the queue at fork(): written once, by the parent
children = []
for c in range(2):
    pid = os.fork()
    if pid == 0:
        burst(f"child{c}", 2000)
        sys.exit(0)  # gunicorn workers end with a normal exit
    children.append(pid)
for pid in children:
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
burst("parent-after", 1000)
"""


def run_worker(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
               tag: str = "") -> subprocess.CompletedProcess[str]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    full_env = {**__import__("os").environ, **(env or {})}
    if tag:
        full_env["TEST_TAG"] = tag
    return subprocess.run([sys.executable, str(script), *args], capture_output=True,
                          text=True, env=full_env, timeout=300, check=False)


def all_lines(path: Path) -> list[bytes]:
    lines: list[bytes] = []
    for file in log_files(path):
        opener = gzip.open if file.name.endswith(".gz") else open
        with opener(file, "rb") as handle:
            lines.extend(handle.read().splitlines())
    return lines


def event_ids(path: Path) -> list[str]:
    ids: list[str] = []
    for raw in all_lines(path):
        record = json.loads(raw)  # every line must be complete JSON
        if "instance_id" in record:
            ids.append(record["instance_id"])
    return ids


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "rotation"), [("sync", "300000"), ("async", "300000"),
                                                ("async", "time")])
def test_four_processes_lose_nothing_across_rotation(tmp_path: Path, mode: str,
                                                      rotation: str) -> None:
    log_dir = tmp_path / "logs"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    count = 25_000 if rotation != "time" else 10_000
    procs = [
        subprocess.Popen([sys.executable, str(script), mode, str(count), str(log_dir), rotation,
                          "normal"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**__import__("os").environ, "TEST_TAG": f"p{n}"})
        for n in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
    path = log_dir / "audit.log"
    assert len(log_files(path)) >= 3, "rotation did not happen"
    ids = event_ids(path)
    counts = Counter(ids)
    assert len(ids) == 4 * count
    assert max(counts.values()) == 1
    assert set(counts) == {f"p{n}-{i}" for n in range(4) for i in range(count)}
    if rotation == "time":
        assert_no_line_in_an_earlier_period(path)


def assert_no_line_in_an_earlier_period(path: Path) -> None:
    """No line sits in the file of a second that ended before the line was created.

    Each writer checks the period before it writes, so a line goes to the file of
    its creation's second or (written later, from the queue) of a later one.
    """
    for file in log_files(path):
        if file == path:
            continue
        # audit.log.2025-08-16_17-06-32[.1][.gz]
        period = file.name.removeprefix(path.name + ".")[:19]
        opener = gzip.open if file.name.endswith(".gz") else open
        with opener(file, "rb") as handle:
            for raw in handle:
                stamp = json.loads(raw)["timestamp"]  # UTC "YYYY-MM-DD HH:MM:SS.mmm"
                created = f"{stamp[:10]}_{stamp[11:19].replace(':', '-')}"
                assert created <= period, (file.name, raw)


@pytest.mark.slow
def test_four_chained_processes_verify(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen([sys.executable, str(script), "async", "5000", str(log_dir), "200000",
                          "normal"], stderr=subprocess.PIPE,
                         env={**__import__("os").environ, "TEST_KEY": "secret"})
        for _ in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
    report = verify_paths([log_dir / "audit.log"], "secret", closed=True)
    assert report.breaks == []
    assert report.chains == 4
    assert report.ok


@pytest.mark.parametrize("finish", ["normal", "exit", "sigterm"])
def test_everything_enqueued_is_on_disk_at_exit(tmp_path: Path, finish: str) -> None:
    log_dir = tmp_path / "logs"
    result = run_worker(tmp_path, "async", "20000", str(log_dir), "0", finish)
    expected = {"normal": 0, "exit": 3, "sigterm": 0}[finish]
    assert result.returncode == expected, result.stderr
    ids = event_ids(log_dir / "audit.log")
    assert len(ids) == 20000
    assert len(set(ids)) == 20000


def test_exit_flush_closes_the_chain(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    result = run_worker(tmp_path, "async", "5000", str(log_dir), "0", "sigterm",
                        env={"TEST_KEY": "k"})
    assert result.returncode == 0, result.stderr
    report = verify_paths([log_dir / "audit.log"], "k", closed=True)
    assert report.breaks == []
    assert report.ok


def test_fork_child_has_its_own_writer_and_chain(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    script = tmp_path / "fork_worker.py"
    script.write_text(FORK_WORKER)
    result = subprocess.run([sys.executable, str(script), str(log_dir)], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    ids = event_ids(log_dir / "audit.log")
    counts = Counter(ids)
    assert max(counts.values()) == 1, "a record was written twice"
    groups = Counter(i.rsplit("-", 1)[0] for i in ids)
    assert groups == {"parent-before": 3000, "child0": 2000, "child1": 2000,
                      "parent-after": 1000}
    report = verify_paths([log_dir / "audit.log"], "k", closed=True)
    assert report.breaks == []
    assert report.chains == 3
