"""Delivery handlers: files, rotation, faults, stdout, the queue (real files, real threads)."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activity_audit.handlers import (
    AuditFileHandler,
    AuditStreamHandler,
    async_file_handler,
    make_async,
)
from activity_audit.integrity import log_files, verify_paths
from activity_audit.levels import AUDIT
from activity_audit.schema import MODEL_LOGGER


def record(i: int, **extra: Any) -> logging.LogRecord:
    return logging.makeLogRecord({
        "name": MODEL_LOGGER, "levelno": AUDIT, "levelname": "AUDIT",
        "msg": f"CREATE event for Patient (id: {i})", "model": "Patient",
        "event_type": "CREATE", "instance_id": str(i), **extra,
    })


def read_lines(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for file in log_files(path):
        opener = gzip.open if file.name.endswith(".gz") else open
        with opener(file, "rb") as handle:
            out.extend(json.loads(line) for line in handle)
    return out


class CountingFileHandler(AuditFileHandler):
    """The real handler, counting how often it reported a failure."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reported: list[BaseException | None] = []

    def handleError(self, record: logging.LogRecord) -> None:
        import sys

        self.reported.append(sys.exc_info()[1])


@pytest.fixture
def handlers() -> Iterator[list[logging.Handler]]:
    made: list[logging.Handler] = []
    yield made
    for handler in made:
        handler.close()


def test_writes_audit_json_lines_and_creates_directory(tmp_path: Path,
                                                       handlers: list[logging.Handler]) -> None:
    path = tmp_path / "deep" / "dir" / "audit.log"
    handler = AuditFileHandler(path)
    handlers.append(handler)
    for i in range(3):
        handler.handle(record(i))
    lines = read_lines(path)
    assert [line["instance_id"] for line in lines] == ["0", "1", "2"]
    assert lines[0]["level"] == "AUDIT"
    assert lines[0]["event_type"] == "CREATE"


def test_size_rotation_names_and_gzip(tmp_path: Path, handlers: list[logging.Handler]) -> None:
    path = tmp_path / "audit.log"
    handler = AuditFileHandler(path, maxBytes=2000, backupCount=100, compress=True)
    handlers.append(handler)
    for i in range(100):
        handler.handle(record(i))
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert "audit.log" in names
    assert "audit.log.1.gz" in names
    assert all(n == "audit.log" or n.endswith(".gz") for n in names)
    assert [line["instance_id"] for line in read_lines(path)] == [str(i) for i in range(100)]


def test_size_rotation_keeps_backup_count(tmp_path: Path,
                                          handlers: list[logging.Handler]) -> None:
    path = tmp_path / "audit.log"
    handler = AuditFileHandler(path, maxBytes=1000, backupCount=3)
    handlers.append(handler)
    for i in range(200):
        handler.handle(record(i))
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert names == ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
    ids = [int(line["instance_id"]) for line in read_lines(path)]
    # The newest lines, in order, none repeated: the oldest went with the deleted backups.
    assert ids == list(range(ids[0], 200))


def test_time_rotation_renames_with_the_period_of_the_old_file(
        tmp_path: Path, handlers: list[logging.Handler]) -> None:
    path = tmp_path / "audit.log"
    path.write_text('{"old": true}\n')
    two_days_ago = time.time() - 2 * 86400
    os.utime(path, (two_days_ago, two_days_ago))
    handler = AuditFileHandler(path, when="midnight", utc=True, backupCount=5)
    handlers.append(handler)
    handler.handle(record(1))
    handler.handle(record(2))
    label = time.strftime("%Y-%m-%d", time.gmtime(two_days_ago))
    rotated = tmp_path / f"audit.log.{label}"
    # The line that found the period over went to the new file, as the stdlib does.
    assert rotated.read_text().splitlines() == ['{"old": true}']
    assert [json.loads(x)["instance_id"] for x in path.read_text().splitlines()] == ["1", "2"]
    assert log_files(path) == [rotated, path]


def second_label(moment: float) -> str:
    """The suffix ``when="S"`` gives the file of the second ``moment`` falls in (UTC)."""
    return time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(moment))


def test_time_rotation_puts_each_line_in_the_file_of_its_period(
        tmp_path: Path, handlers: list[logging.Handler]) -> None:
    path = tmp_path / "audit.log"
    handler = AuditFileHandler(path, when="S", interval=1, utc=True, backupCount=1000)
    handlers.append(handler)
    # The handler checks the period between the record's creation (the line's
    # timestamp) and the return of handle(): the line belongs to one of the two.
    returned: dict[str, float] = {}
    start = time.time()
    i = 0
    while int(time.time()) < int(start) + 3:  # at least two period boundaries
        handler.handle(record(i))
        returned[str(i)] = time.time()
        i += 1
        time.sleep(0.01)
    while int(time.time()) == int(returned[str(i - 1)]):
        time.sleep(0.01)
    handler.handle(record(-1))  # a later period: every line before it is in a dated file
    assert [json.loads(x)["instance_id"] for x in path.read_text().splitlines()] == ["-1"]
    rotated = [file for file in log_files(path) if file != path]
    assert len(rotated) >= 2
    seen: list[str] = []
    for file in rotated:
        period = file.name.removeprefix("audit.log.")
        for raw in file.read_text().splitlines():
            line = json.loads(raw)
            stamp = line["timestamp"]  # "YYYY-MM-DD HH:MM:SS.mmm", UTC
            created = f"{stamp[:10]}_{stamp[11:19].replace(':', '-')}"
            assert period in {created, second_label(returned[line["instance_id"]])}, (
                file.name, line)
            seen.append(line["instance_id"])
    assert seen == [str(n) for n in range(i)]


def test_file_deleted_under_the_writer_is_recreated(tmp_path: Path,
                                                    handlers: list[logging.Handler]) -> None:
    path = tmp_path / "audit.log"
    handler = CountingFileHandler(path)
    handlers.append(handler)
    handler.handle(record(1))
    path.unlink()
    handler.handle(record(2))
    handler.handle(record(3))
    assert [line["instance_id"] for line in read_lines(path)] == ["2", "3"]
    assert handler.reported == []


def ids_in(path: Path) -> list[str]:
    """The ids in this one file (``read_lines`` reads its rotated files too)."""
    return [json.loads(line)["instance_id"] for line in path.read_bytes().splitlines()]


def test_settled_directory_still_sees_every_change_of_the_file(
        tmp_path: Path, handlers: list[logging.Handler]) -> None:
    # Writers ask the directory, not the file, once it has not changed for a second:
    # removal, an outside rename (logrotate) and another writer's rotation are still seen.
    path = tmp_path / "audit.log"
    writer = CountingFileHandler(path)
    rotator = CountingFileHandler(path, maxBytes=1, backupCount=3)
    handlers += [writer, rotator]
    writer.handle(record(1))
    time.sleep(1.1)
    writer.handle(record(2))
    assert writer._file.settled_directory is not None  # the cheap check is the one in use
    path.unlink()
    writer.handle(record(3))
    assert ids_in(path) == ["3"]
    time.sleep(1.1)
    writer.handle(record(4))
    assert writer._file.settled_directory is not None
    path.rename(tmp_path / "audit.log.outside")
    writer.handle(record(5))
    assert ids_in(path) == ["5"]
    time.sleep(1.1)
    writer.handle(record(6))
    assert writer._file.settled_directory is not None
    rotator.handle(record(7))  # past its limit: rotates the shared file
    writer.handle(record(8))
    assert ids_in(path) == ["8"]
    assert ids_in(tmp_path / "audit.log.1") == ["5", "6", "7"]
    assert writer.reported == rotator.reported == []


def test_symlinked_log_file_is_always_asked(tmp_path: Path,
                                            handlers: list[logging.Handler]) -> None:
    # A symlink's target changes in a directory the writer does not watch.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "logs").mkdir()
    path = tmp_path / "logs" / "audit.log"
    path.symlink_to(elsewhere / "real.log")
    handler = CountingFileHandler(path)
    handlers.append(handler)
    handler.handle(record(1))
    time.sleep(1.1)
    handler.handle(record(2))
    assert handler._file.settled_directory is None
    (elsewhere / "real.log").rename(elsewhere / "real.log.1")
    handler.handle(record(3))
    assert ids_in(elsewhere / "real.log") == ["3"]
    assert ids_in(elsewhere / "real.log.1") == ["1", "2"]


def test_uncreatable_directory_reports_once_and_resumes_losslessly(
        tmp_path: Path, handlers: list[logging.Handler]) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a regular file where the log directory should be")
    path = blocker / "audit.log"
    # Constructing never fails: the application must start.
    handler = CountingFileHandler(path)
    handlers.append(handler)
    for i in range(50):
        handler.handle(record(i))
    assert len(handler.reported) == 1
    assert isinstance(handler.reported[0], OSError)
    blocker.unlink()
    handler.handle(record(50))
    assert [line["instance_id"] for line in read_lines(path)] == [str(i) for i in range(51)]
    assert len(handler.reported) == 1


def test_disk_full_reports_once_per_burst_and_resumes(tmp_path: Path,
                                                      handlers: list[logging.Handler]) -> None:
    path = tmp_path / "audit.log"
    path.symlink_to("/dev/full")
    handler = CountingFileHandler(path)
    handlers.append(handler)
    for i in range(20):
        handler.handle(record(i))
    assert len(handler.reported) == 1
    exc = handler.reported[0]
    assert isinstance(exc, OSError)
    assert exc.errno == 28  # ENOSPC
    path.unlink()  # space again: the next write opens a regular file
    handler.handle(record(20))
    assert [line["instance_id"] for line in read_lines(path)] == [str(i) for i in range(21)]
    # A second burst is reported again.
    path.unlink()
    path.symlink_to("/dev/full")
    handler.handle(record(21))
    assert len(handler.reported) == 2


def test_failed_compression_writes_each_line_once_and_reports_once(
        tmp_path: Path, handlers: list[logging.Handler]) -> None:
    path = tmp_path / "audit.log"
    # Where gzip writes the compressed copy: a directory, so every compression fails.
    blocker = tmp_path / "audit.log.1.gz.tmp"
    blocker.mkdir()
    handler = CountingFileHandler(path, maxBytes=2000, backupCount=100, compress=True,
                                  integrity_key="k")
    handlers.append(handler)
    for i in range(100):
        handler.handle(record(i))
    assert len(handler.reported) == 1  # once for the burst, not once per rotation
    exc = handler.reported[0]
    assert isinstance(exc, OSError)
    assert isinstance(exc.__cause__, IsADirectoryError)
    assert (tmp_path / "audit.log.2").is_file()  # rotated on, left uncompressed
    blocker.rmdir()
    for i in range(100, 200):  # the next rotations compress again, silently
        handler.handle(record(i))
    assert (tmp_path / "audit.log.1.gz").is_file()
    # The backups the outage left uncompressed are compressed too.
    backups = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("audit.log."))
    numbered = [name for name in backups if name[len("audit.log."):][:1].isdigit()]
    assert len(numbered) > 2
    assert [name for name in numbered if not name.endswith(".gz")] == []
    assert len(handler.reported) == 1
    blocker.mkdir()  # a new burst is reported again
    for i in range(200, 300):
        handler.handle(record(i))
    assert len(handler.reported) == 2
    handler.close()
    ids = [line["instance_id"] for line in read_lines(path) if "instance_id" in line]
    assert ids == [str(i) for i in range(300)]
    report = verify_paths([path], "k", closed=True)
    assert report.breaks == []
    assert report.ok


def test_unreplaceable_rotated_file_keeps_writing_and_retries(
        tmp_path: Path, handlers: list[logging.Handler]) -> None:
    path = tmp_path / "audit.log"
    # With one backup the old audit.log.1 is removed first: a non-empty directory can't be.
    blocker = tmp_path / "audit.log.1"
    blocker.mkdir()
    (blocker / "keep").write_text("x")
    handler = CountingFileHandler(path, maxBytes=1000, backupCount=1)
    handlers.append(handler)
    for i in range(30):
        handler.handle(record(i))
    assert len(handler.reported) == 1
    assert isinstance(handler.reported[0], OSError)
    with path.open("rb") as handle:  # everything in the live file, once, in order
        assert [json.loads(x)["instance_id"] for x in handle] == [str(i) for i in range(30)]
    shutil.rmtree(blocker)
    handler.handle(record(30))  # past the limit: rotation is retried, and succeeds
    assert blocker.is_file()
    assert [line["instance_id"] for line in read_lines(path)] == [str(i) for i in range(31)]
    assert len(handler.reported) == 1


def test_rotation_failure_in_a_queue_writer_writes_each_line_once(
        tmp_path: Path, handlers: list[logging.Handler]) -> None:
    path = tmp_path / "audit.log"
    (tmp_path / "audit.log.1.gz.tmp").mkdir()
    target = CountingFileHandler(path, maxBytes=2000, backupCount=100, compress=True)
    handler = make_async(target)
    for i in range(500):
        handler.handle(record(i))
    handler.close()
    assert len(target.reported) == 1
    assert [line["instance_id"] for line in read_lines(path)] == [str(i) for i in range(500)]


def test_bounded_buffer_counts_and_reports_lost_lines(tmp_path: Path,
                                                      handlers: list[logging.Handler]) -> None:
    path = tmp_path / "audit.log"
    path.symlink_to("/dev/full")
    handler = CountingFileHandler(path, max_pending_bytes=2000)
    handlers.append(handler)
    for i in range(100):
        handler.handle(record(i))
    assert handler.lost > 0
    path.unlink()
    handler.handle(record(100))
    lines = read_lines(path)
    notice = lines[0]
    assert notice["lost"] == handler.lost
    kept = [int(line["instance_id"]) for line in lines[1:]]
    assert len(kept) + handler.lost == 101
    assert kept == sorted(kept)
    assert kept[-1] == 100


def test_stdout_handler_writes_one_flushed_line_per_record(
        capsys: pytest.CaptureFixture[str], handlers: list[logging.Handler]) -> None:
    handler = AuditStreamHandler()
    handlers.append(handler)
    handler.handle(record(1))
    handler.handle(record(2))
    out = capsys.readouterr().out
    assert [json.loads(line)["instance_id"] for line in out.splitlines()] == ["1", "2"]


class GatedStream(io.StringIO):
    """A stream whose writes wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def write(self, text: str) -> int:
        self.gate.wait()
        return super().write(text)


def test_async_handler_formats_in_caller_thread_and_writes_in_writer(
        tmp_path: Path, handlers: list[logging.Handler]) -> None:
    path = tmp_path / "audit.log"
    handler = async_file_handler(path)
    handlers.append(handler)
    threads: list[str] = []

    class SpyFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            threads.append(threading.current_thread().name)
            return json.dumps({"instance_id": record.instance_id})  # type: ignore[attr-defined]

    handler.setFormatter(SpyFormatter())
    for i in range(10):
        handler.handle(record(i))
    handler.flush()
    assert set(threads) == {threading.current_thread().name}
    assert [line["instance_id"] for line in read_lines(path)] == [str(i) for i in range(10)]


def test_queue_full_blocks_by_default_and_loses_nothing(handlers: list[logging.Handler]) -> None:
    stream = GatedStream()
    handler = make_async(AuditStreamHandler(stream), queue_size=2)
    handlers.append(handler)
    producer = threading.Thread(target=lambda: [handler.handle(record(i)) for i in range(20)])
    producer.start()
    producer.join(0.3)
    # Writer stuck on the gate, queue full: the producer waits instead of dropping.
    assert producer.is_alive()
    stream.gate.set()
    producer.join()
    handler.flush()
    ids = [json.loads(line)["instance_id"] for line in stream.getvalue().splitlines()]
    assert ids == [str(i) for i in range(20)]
    assert handler.dropped == 0


def assert_drops_reported(handler: Any, stream: GatedStream, total: int) -> None:
    """Open the gate, write one more record: every drop is in the log, every event accounted."""
    stream.gate.set()
    handler.handle(record(total - 1))
    handler.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert sum(line.get("dropped", 0) for line in lines) == handler.dropped
    written = [line for line in lines if "instance_id" in line]
    assert len(written) + handler.dropped == total


def test_drop_policy_counts_and_reports_in_the_log(handlers: list[logging.Handler]) -> None:
    stream = GatedStream()
    handler = make_async(AuditStreamHandler(stream), queue_size=2, full_policy="drop")
    handlers.append(handler)
    for i in range(20):
        handler.handle(record(i))
    assert handler.dropped > 0
    assert_drops_reported(handler, stream, total=21)


def test_close_writes_everything_enqueued(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    handler = async_file_handler(path)
    for i in range(2000):
        handler.handle(record(i))
    handler.close()
    assert len(read_lines(path)) == 2000
    # After close (interpreter exit, reconfiguration) events are still written, inline.
    handler.handle(record(2000))
    assert read_lines(path)[-1]["instance_id"] == "2000"
    handler.close()
