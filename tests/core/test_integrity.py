"""The hash chain: every kind of tampering on a real chained file is found, at its line."""

from __future__ import annotations

import gzip
import json
import logging
import time
from pathlib import Path

import pytest

from activity_audit.handlers import AuditFileHandler
from activity_audit.integrity import BreakKind, Chain, ChainEvent, log_files, verify_paths
from activity_audit.levels import AUDIT
from activity_audit.schema import INTEGRITY_KEYS, MODEL_LOGGER

KEY = "test-key"


def write_chained(path: Path, count: int = 20, **options: object) -> list[bytes]:
    handler = AuditFileHandler(path, integrity_key=KEY, **options)  # type: ignore[arg-type]
    for i in range(count):
        handler.handle(logging.makeLogRecord({
            "name": MODEL_LOGGER, "levelno": AUDIT, "levelname": "AUDIT",
            "msg": "CREATE event for Patient", "event_type": "CREATE", "instance_id": str(i),
        }))
    handler.close()
    return path.read_bytes().splitlines(keepends=True)


def only_break(path: Path, **kwargs: object) -> tuple[BreakKind, int]:
    report = verify_paths([path], KEY, **kwargs)  # type: ignore[arg-type]
    assert not report.ok
    assert len(report.breaks) == 1, report.breaks
    brk = report.breaks[0]
    return brk.kind, brk.line


@pytest.fixture
def chained(tmp_path: Path) -> tuple[Path, list[bytes]]:
    path = tmp_path / "audit.log"
    return path, write_chained(path)


def test_lines_carry_the_chain_keys_last(chained: tuple[Path, list[bytes]]) -> None:
    _, lines = chained
    records = [json.loads(line) for line in lines]
    assert records[0]["event_type"] == ChainEvent.START
    assert records[-1]["event_type"] == ChainEvent.END
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert len({r["chain_id"] for r in records}) == 1
    assert list(records[5])[-3:] == list(INTEGRITY_KEYS)
    assert records[5]["instance_id"] == "4"


def test_intact_file_verifies(chained: tuple[Path, list[bytes]]) -> None:
    path, lines = chained
    report = verify_paths([path], KEY, closed=True)
    assert report.ok
    assert report.breaks == []
    assert report.chains == 1
    assert report.lines == len(lines)


def test_modified_line(chained: tuple[Path, list[bytes]]) -> None:
    path, lines = chained
    lines[7] = lines[7].replace(b'"instance_id":"6"', b'"instance_id":"X"')
    path.write_bytes(b"".join(lines))
    assert only_break(path) == (BreakKind.MODIFIED, 8)


def test_deleted_line(chained: tuple[Path, list[bytes]]) -> None:
    path, lines = chained
    del lines[7]
    path.write_bytes(b"".join(lines))
    # Seen where the gap is: the line after the missing one.
    assert only_break(path) == (BreakKind.DELETED, 8)


def test_inserted_unchained_line(chained: tuple[Path, list[bytes]]) -> None:
    path, lines = chained
    lines.insert(4, b'{"event_type":"DELETE","instance_id":"forged"}\n')
    path.write_bytes(b"".join(lines))
    assert only_break(path) == (BreakKind.INSERTED, 5)


def test_inserted_copy_of_a_line(chained: tuple[Path, list[bytes]]) -> None:
    path, lines = chained
    lines.insert(10, lines[3])
    path.write_bytes(b"".join(lines))
    assert only_break(path) == (BreakKind.INSERTED, 11)


def test_forged_line_placed_before_the_real_one(chained: tuple[Path, list[bytes]]) -> None:
    path, lines = chained
    forged = lines[6].replace(b'"instance_id":"5"', b'"instance_id":"666"')
    lines.insert(6, forged)
    path.write_bytes(b"".join(lines))
    assert only_break(path) == (BreakKind.INSERTED, 7)


def test_reordered_lines(chained: tuple[Path, list[bytes]]) -> None:
    path, lines = chained
    lines[5], lines[6] = lines[6], lines[5]
    path.write_bytes(b"".join(lines))
    assert only_break(path) == (BreakKind.REORDERED, 7)


def test_truncated_tail(chained: tuple[Path, list[bytes]]) -> None:
    path, lines = chained
    path.write_bytes(b"".join(lines[:-3]))
    assert only_break(path, closed=True) == (BreakKind.TRUNCATED, len(lines) - 3)
    # Without --closed, a chain whose last record is older than two checkpoints is cut too.
    assert only_break(path, now=time.time() + 3600) == (BreakKind.TRUNCATED, len(lines) - 3)
    # ... and a recent one may belong to a writer still running.
    report = verify_paths([path], KEY)
    assert report.breaks == []
    assert len(report.open_chains) == 1


def test_wrong_key_is_not_intact(chained: tuple[Path, list[bytes]]) -> None:
    path, _ = chained
    report = verify_paths([path], "another key", closed=True)
    assert not report.ok
    assert "another key" in report.breaks[0].detail


def test_file_without_chain_is_not_ok(tmp_path: Path) -> None:
    path = tmp_path / "plain.log"
    path.write_text('{"a": 1}\n')
    report = verify_paths([path], KEY)
    assert not report.ok
    assert report.chains == 0


def test_chain_spans_rotated_and_gzipped_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_chained(path, count=300, maxBytes=4000, backupCount=1000, compress=True)
    files = log_files(path)
    assert len(files) > 3
    assert files[0].name.endswith(".gz")
    assert files[-1] == path
    assert verify_paths([path], KEY, closed=True).ok
    # Tamper inside a gzipped backup: reported with that file and its line.
    target = files[1]
    data = gzip.decompress(target.read_bytes()).splitlines(keepends=True)
    data[2] = data[2].replace(b"CREATE", b"DELETE", 1)
    target.write_bytes(gzip.compress(b"".join(data)))
    report = verify_paths([path], KEY, closed=True)
    assert [(b.kind, b.file, b.line) for b in report.breaks] == [
        (BreakKind.MODIFIED, str(target), 3)]


def test_idle_chain_writes_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    handler = AuditFileHandler(path, integrity_key=KEY, checkpoint_interval=0.1)
    handler.handle(logging.makeLogRecord({"name": MODEL_LOGGER, "msg": "x"}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and b"CHAIN_CHECKPOINT" not in path.read_bytes():
        time.sleep(0.05)
    handler.close()
    events = [json.loads(line).get("event_type") for line in path.read_bytes().splitlines()]
    assert ChainEvent.CHECKPOINT in events
    assert verify_paths([path], KEY, closed=True).ok


def test_non_json_line_is_wrapped_and_sealed() -> None:
    chain = Chain(KEY)
    sealed = chain.seal(b"plain text")
    record = json.loads(sealed)
    assert record["raw"] == "plain text"
    assert record["seq"] == 0
