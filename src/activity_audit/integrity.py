"""Tamper-evident hash chains over JSON lines (core: no Django imports).

A writing process seals every line it writes with three keys appended at the
end of the JSON object (:data:`~activity_audit.schema.INTEGRITY_KEYS`)::

    {...,"chain_id":"3f2a…","seq":41,"mac":"9b1c…"}

``mac`` is ``HMAC-SHA256(key, previous_mac || canonical)`` in hex, where
``canonical`` is the line's exact UTF-8 bytes up to (not including)
``,"mac":"`` and ``previous_mac`` the raw MAC of the chain's record ``seq - 1``
(32 zero bytes for ``seq`` 0). Each process (and each handler in it) has its own
chain, so several processes can share one file. A chain opens with a
``CHAIN_START`` record, carries ``CHAIN_CHECKPOINT`` records while it is idle
and ends with ``CHAIN_END`` when the handler closes, so a truncated tail shows
as a chain that stops without an end record.

:func:`verify_paths` reads files (rotated and gzipped ones too, oldest first)
and reports every break: a line modified, deleted, inserted, reordered, and a
chain truncated.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hmac
import io
import os
import re
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from activity_audit import _json
from activity_audit.formatters import format_timestamp
from activity_audit.schema import DIAGNOSTIC_LOGGER, INTEGRITY_KEYS

__all__ = [
    "INTEGRITY_LOGGER",
    "Break",
    "BreakKind",
    "Chain",
    "ChainEvent",
    "Report",
    "Verifier",
    "key_bytes",
    "key_id",
    "log_files",
    "verify_paths",
]

#: ``name`` of the chain's own records (start, checkpoint, end).
INTEGRITY_LOGGER: Final = f"{DIAGNOSTIC_LOGGER}.integrity"
#: Default seconds between checkpoints of an idle chain.
DEFAULT_CHECKPOINT_INTERVAL: Final = 60.0

_CHAIN_ID, _SEQ, _MAC = INTEGRITY_KEYS
_CHAIN_ID_BYTES: Final = _CHAIN_ID.encode()
_SEQ_BYTES: Final = _SEQ.encode()
_QUOTED_CHAIN_ID: Final = b'"' + _CHAIN_ID_BYTES + b'"'
_ZERO_MAC: Final = bytes(32)
_MAC_OPEN: Final = f',"{_MAC}":"'.encode()
# ',"mac":"' + 64 hex digits + '"}'
_MAC_TAIL_LEN: Final = len(_MAC_OPEN) + 64 + 2
_CHAIN_OPEN: Final = f',"{_CHAIN_ID}":"'.encode()
_TAIL_RE: Final = re.compile(
    rb',"' + _CHAIN_ID.encode() + rb'":"([0-9a-f]{1,64})","' + _SEQ.encode()
    + rb'":(0|[1-9][0-9]{0,18}),"' + _MAC.encode() + rb'":"([0-9a-f]{64})"\}'
)
_CONTROL_MARK: Final = b'"event_type":"CHAIN_'


class ChainEvent(StrEnum):
    """``event_type`` of the chain's own records."""

    START = "CHAIN_START"
    CHECKPOINT = "CHAIN_CHECKPOINT"
    END = "CHAIN_END"


def key_bytes(key: str | bytes) -> bytes:
    """The HMAC key as bytes (a ``str`` key is UTF-8 encoded)."""
    data = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not data:
        raise ValueError("the integrity key is empty")
    return data


def key_id(key: bytes) -> str:
    """A short public fingerprint of ``key``: tells which key sealed a chain."""
    return hmac.digest(key, b"activity_audit key id", "sha256")[:6].hex()


class Chain:
    """One process's chain: seals lines in the order they are written.

    Not thread-safe: the handler calls it under its lock (or from its single
    writer thread).

    Args:
        key: the HMAC key.
        checkpoint_interval: seconds after which an idle chain writes a
            checkpoint; recorded in the start record for the verifier.
    """

    def __init__(self, key: str | bytes,
                 checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL) -> None:
        self.key = key_bytes(key)
        self.checkpoint_interval = float(checkpoint_interval)
        self.chain_id = uuid.uuid4().hex
        self.seq = -1
        self.last_write = 0.0
        self._prev = _ZERO_MAC
        # What every sealed line of this chain carries before its sequence number.
        self._head = b"".join((b'"', _CHAIN_ID_BYTES, b'":"', self.chain_id.encode("ascii"),
                               b'","', _SEQ_BYTES, b'":'))

    @property
    def started(self) -> bool:
        return self.seq >= 0

    def seal(self, line: bytes) -> bytes:
        """Return ``line`` (one JSON object, no newline) with the chain keys appended."""
        body = line.rstrip(b"\r\n")
        if not (body.startswith(b"{") and body.endswith(b"}")) or b"\n" in body:
            # Only JSON objects can carry the keys: wrap anything else losslessly.
            body = _json.dumps({"raw": line.decode("utf-8", "backslashreplace")})
        self.seq += 1
        inner = body[:-1]
        separator = b"," if inner.strip() != b"{" else b""
        prefix = b"".join((inner, separator, self._head, str(self.seq).encode()))
        mac = hmac.digest(self.key, self._prev + prefix, "sha256")
        self._prev = mac
        return b"".join((prefix, _MAC_OPEN, mac.hex().encode("ascii"), b'"}'))

    def control(self, event: ChainEvent, now: float | None = None,
                **fields: Any) -> bytes:
        """A sealed chain record (start, checkpoint or end)."""
        created = time.time() if now is None else now
        record: dict[str, Any] = {
            "timestamp": format_timestamp(created),
            "level": "INFO",
            "name": INTEGRITY_LOGGER,
            "message": f"integrity {event.value.lower().replace('_', ' ')}",
            "event_type": event.value,
            **fields,
        }
        return self.seal(_json.dumps(record))

    def seal_lines(self, lines: Iterable[bytes], now: float | None = None) -> list[bytes]:
        """Seal ``lines``; a new chain first gets its start record."""
        created = time.time() if now is None else now
        out: list[bytes] = []
        if not self.started:
            out.append(self.start_record(created))
        out.extend(self.seal(line) for line in lines)
        self.last_write = created
        return out

    def start_record(self, now: float) -> bytes:
        return self.control(
            ChainEvent.START, now, pid=os.getpid(), host=socket.gethostname(),
            key_id=key_id(self.key), checkpoint_interval=self.checkpoint_interval,
        )

    def checkpoint_due(self, now: float) -> bool:
        return self.started and now - self.last_write >= self.checkpoint_interval

    def checkpoint(self, now: float) -> bytes:
        self.last_write = now
        return self.control(ChainEvent.CHECKPOINT, now, records=self.seq + 1)

    def end(self, now: float | None = None) -> bytes:
        created = time.time() if now is None else now
        return self.control(ChainEvent.END, created, records=self.seq + 2)


# -- verification ---------------------------------------------------------------------------


class BreakKind(StrEnum):
    """What a break in a chain means."""

    MODIFIED = "modified"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"


@dataclasses.dataclass
class Break:
    """One break: where it is seen (file, 1-based line) and what it is."""

    kind: BreakKind
    file: str
    line: int
    detail: str
    chain_id: str | None = None
    seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "file": self.file, "line": self.line,
                "chain_id": self.chain_id, "seq": self.seq, "detail": self.detail}


@dataclasses.dataclass
class Report:
    """The result of a verification; ``ok`` when no break was found."""

    files: list[str]
    lines: int
    chains: int
    breaks: list[Break]
    open_chains: list[str]

    @property
    def ok(self) -> bool:
        return not self.breaks and self.chains > 0

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "files": self.files, "lines": self.lines,
                "chains": self.chains, "open_chains": self.open_chains,
                "breaks": [b.as_dict() for b in self.breaks]}


@dataclasses.dataclass
class _Seen:
    mac: bytes
    file: str
    line: int
    verified: bool
    break_: Break | None = None


@dataclasses.dataclass
class _Pending:
    """A record whose predecessor was not seen yet (a gap): verified when it shows up."""

    prefix: bytes
    mac: bytes
    file: str
    line: int


@dataclasses.dataclass
class _ChainState:
    chain_id: str
    max_seq: int = -1
    key_ok: bool = True
    ended: bool = False
    interval: float | None = None
    last_line: bytes = b""
    last_file: str = ""
    last_lineno: int = 0
    # Recent records by seq (bounded), enough to place late and duplicated ones.
    window: OrderedDict[int, _Seen] = dataclasses.field(default_factory=OrderedDict)
    # seq -> where the gap was seen; resolved when the record arrives late.
    gaps: dict[int, tuple[str, int]] = dataclasses.field(default_factory=dict)
    waiting: dict[int, _Pending] = dataclasses.field(default_factory=dict)


class Verifier:
    """Streaming verifier: :meth:`feed` lines in file order, then :meth:`finish`.

    Args:
        key: the HMAC key; without one only the structure (order, gaps,
            duplicates, truncation) is checked.
        window: how many recent records per chain are remembered to recognise
            reordered and duplicated lines.
    """

    def __init__(self, key: str | bytes | None, window: int = 4096) -> None:
        self.key = key_bytes(key) if key is not None else None
        self._key_id = key_id(self.key) if self.key is not None else None
        self.window = window
        self.chains: dict[str, _ChainState] = {}
        self.breaks: list[Break] = []
        self.lines = 0
        self._unchained: list[Break] = []

    def _add(self, kind: BreakKind, file: str, line: int, detail: str,
             chain_id: str | None = None, seq: int | None = None) -> Break:
        brk = Break(kind, file, line, detail, chain_id, seq)
        self.breaks.append(brk)
        return brk

    def _mac_ok(self, prev: bytes, prefix: bytes, mac: bytes) -> bool:
        if self.key is None:
            return True
        return hmac.compare_digest(hmac.digest(self.key, prev + prefix, "sha256"), mac)

    def feed(self, file: str, lineno: int, raw: bytes) -> None:
        """Check one line (``lineno`` is 1-based within ``file``)."""
        self.lines += 1
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            return
        start = line.rfind(_CHAIN_OPEN, 0, len(line) - _MAC_TAIL_LEN + 1)
        match = _TAIL_RE.fullmatch(line, start) if start >= 0 else None
        if match is None:
            if _QUOTED_CHAIN_ID in line:
                self._add(BreakKind.MODIFIED, file, lineno,
                          "the chain keys of this line are damaged")
            else:
                # Judged in finish(): a file with no chain at all is not "inserted into".
                self._unchained.append(Break(BreakKind.INSERTED, file, lineno,
                                             "line carries no chain keys"))
            return
        chain_id = match[1].decode("ascii")
        seq = int(match[2])
        mac = bytes.fromhex(match[3].decode("ascii"))
        prefix = line[: len(line) - _MAC_TAIL_LEN]
        state = self.chains.get(chain_id)
        if state is None:
            state = self.chains[chain_id] = _ChainState(chain_id)
            if seq != 0:
                self._add(BreakKind.DELETED, file, lineno,
                          f"chain starts at record {seq}: records 0..{seq - 1} are missing "
                          "(deleted, or in files not given)", chain_id, seq)
                # Nothing to verify against: trust this record's MAC as the anchor.
                state.max_seq = seq
                self._remember(state, seq, _Seen(mac, file, lineno, True))
                self._track_last(state, line, file, lineno)
                return
        if _CONTROL_MARK in prefix:
            self._control(state, seq, prefix, file, lineno)
        self._place(state, seq, prefix, mac, file, lineno)
        if seq >= state.max_seq:
            self._track_last(state, line, file, lineno)

    def _track_last(self, state: _ChainState, line: bytes, file: str, lineno: int) -> None:
        state.last_line = line
        state.last_file = file
        state.last_lineno = lineno

    def _control(self, state: _ChainState, seq: int, prefix: bytes, file: str,
                 lineno: int) -> None:
        try:
            record = _json.loads(prefix + b"}")
        except Exception:
            return
        event = record.get("event_type") if isinstance(record, dict) else None
        if event == ChainEvent.START:
            interval = record.get("checkpoint_interval")
            if isinstance(interval, (int, float)):
                state.interval = float(interval)
            if self._key_id is not None and record.get("key_id") not in (None, self._key_id):
                state.key_ok = False
                self._add(BreakKind.MODIFIED, file, lineno,
                          f"chain was sealed with another key (key id {record.get('key_id')})",
                          state.chain_id, seq)
        elif event == ChainEvent.END:
            state.ended = True

    def _remember(self, state: _ChainState, seq: int, seen: _Seen) -> None:
        state.window[seq] = seen
        if len(state.window) > self.window:
            state.window.popitem(last=False)

    def _prev_mac(self, state: _ChainState, seq: int) -> bytes | None:
        if seq == 0:
            return _ZERO_MAC
        prev = state.window.get(seq - 1)
        return prev.mac if prev is not None else None

    def _place(self, state: _ChainState, seq: int, prefix: bytes, mac: bytes, file: str,
               lineno: int) -> None:
        cid = state.chain_id
        check = state.key_ok
        seen = state.window.get(seq)
        if seen is not None:
            prev = self._prev_mac(state, seq)
            ok = prev is not None and (not check or self._mac_ok(prev, prefix, mac))
            if ok and not seen.verified and seen.break_ is not None:
                # The first copy was the forgery: relabel it and keep this one.
                seen.break_.kind = BreakKind.INSERTED
                seen.break_.detail = f"forged line for record {seq} of the chain"
                self._remember(state, seq, _Seen(mac, file, lineno, True))
            else:
                self._add(BreakKind.INSERTED, file, lineno,
                          f"record {seq} appears twice (first at {seen.file}:{seen.line})",
                          cid, seq)
            return
        if seq > state.max_seq:
            for missing in range(state.max_seq + 1, seq):
                state.gaps[missing] = (file, lineno)
            state.max_seq = seq
        elif seq in state.gaps:
            state.gaps.pop(seq)
            self._add(BreakKind.REORDERED, file, lineno,
                      f"record {seq} comes after record {state.max_seq}", cid, seq)
        else:
            self._add(BreakKind.INSERTED, file, lineno,
                      f"record {seq} is out of place (older than the chain's memory)", cid, seq)
            return
        prev = self._prev_mac(state, seq)
        if prev is None:
            # Predecessor not seen (yet): verify when it arrives, or it is a deletion.
            state.waiting[seq] = _Pending(prefix, mac, file, lineno)
            self._remember(state, seq, _Seen(mac, file, lineno, False))
        else:
            self._verify_at(state, seq, prev, prefix, mac, file, lineno)
        following = state.waiting.pop(seq + 1, None)
        if following is not None:
            current = state.window.get(seq)
            if current is not None:
                self._verify_at(state, seq + 1, current.mac, following.prefix, following.mac,
                                following.file, following.line)

    def _verify_at(self, state: _ChainState, seq: int, prev: bytes, prefix: bytes, mac: bytes,
                   file: str, lineno: int) -> None:
        ok = not state.key_ok or self._mac_ok(prev, prefix, mac)
        brk = None
        if not ok:
            brk = self._add(BreakKind.MODIFIED, file, lineno,
                            f"record {seq} does not match its MAC (content changed)",
                            state.chain_id, seq)
        self._remember(state, seq, _Seen(mac, file, lineno, ok, brk))

    def finish(self, now: float | None = None, closed: bool = False) -> Report:
        """Report the remaining breaks: gaps never filled and chains cut short.

        A chain without an end record is reported truncated when ``closed`` (no
        writer is running) or when its last record is older than two checkpoint
        intervals before ``now`` (a live writer would have written one since);
        otherwise it is listed in ``open_chains``.
        """
        reference = time.time() if now is None else now
        open_chains: list[str] = []
        for state in self.chains.values():
            for seq in sorted(state.gaps):
                file, lineno = state.gaps[seq]
                self._add(BreakKind.DELETED, file, lineno,
                          f"record {seq} of the chain is missing before this line",
                          state.chain_id, seq)
            if state.ended:
                continue
            last_time = _line_time(state.last_line)
            interval = state.interval if state.interval is not None else \
                DEFAULT_CHECKPOINT_INTERVAL
            stale = last_time is None or reference - last_time > 2 * interval
            if closed or stale:
                self._add(BreakKind.TRUNCATED, state.last_file, state.last_lineno,
                          f"chain stops at record {state.max_seq} without an end record "
                          "(tail removed, or the writer was killed)",
                          state.chain_id, state.max_seq)
            else:
                open_chains.append(state.chain_id)
        if self.chains:
            self.breaks.extend(self._unchained)
        self.breaks.sort(key=lambda b: (b.file, b.line))
        return Report([], self.lines, len(self.chains), self.breaks, open_chains)


def _line_time(line: bytes) -> float | None:
    start = line.find(b'"timestamp":"')
    if start < 0:
        return None
    value = line[start + 13: start + 36].decode("ascii", "replace")
    try:
        stamp = dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f")
    except ValueError:
        return None
    return stamp.replace(tzinfo=dt.UTC).timestamp()


# -- reading files ----------------------------------------------------------------------------

_NUMBERED_RE: Final = re.compile(r"\.(\d+)(\.gz)?$")


def log_files(path: str | os.PathLike[str]) -> list[Path]:
    """``path`` and its rotated files, oldest first.

    Numbered backups (``audit.log.3`` … ``audit.log.1``) come before dated
    ones' newest, dated backups (``audit.log.2025-08-16``) sort by date, and
    the live file comes last; ``.gz`` files are included. A path that is itself
    a rotated file is returned alone.
    """
    base = Path(path)
    if not base.name or _NUMBERED_RE.search(base.name) or base.suffix == ".gz":
        return [base]
    numbered: list[tuple[int, Path]] = []
    dated: list[tuple[str, Path]] = []
    directory = base.parent
    prefix = base.name + "."
    try:
        names = os.listdir(directory)
    except OSError:
        names = []
    for name in names:
        if not name.startswith(prefix) or name.endswith((".tmp", ".lock")):
            continue
        suffix = name[len(prefix):]
        if suffix.endswith(".gz"):
            suffix = suffix[:-3]
        if suffix.isdigit():
            numbered.append((int(suffix), directory / name))
        elif suffix[:1].isdigit():
            dated.append((suffix, directory / name))
    ordered = [p for _, p in sorted(dated)] + [p for _, p in sorted(numbered, reverse=True)]
    if base.exists() or not ordered:
        ordered.append(base)
    return ordered


def _open(path: Path) -> io.BufferedReader | gzip.GzipFile:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _iter_lines(path: Path) -> Iterator[bytes]:
    with _open(path) as handle:
        yield from handle


def verify_paths(paths: Iterable[str | os.PathLike[str]], key: str | bytes | None, *,
                 now: float | None = None, closed: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> Report:
    """Verify the files at ``paths`` (each with its rotated files), in order.

    Args:
        paths: live log files (their rotated siblings are found) or single files.
        key: the HMAC key, or None for a structure-only check.
        now: reference time for deciding a chain without end was truncated.
        closed: every writer has stopped: a chain without end record is truncated.
        progress: called as ``progress(bytes_done, bytes_total)`` now and then.

    Raises:
        OSError: a file cannot be read.
    """
    files: list[Path] = []
    for path in paths:
        for found in log_files(path):
            if found not in files:
                files.append(found)
    total = sum(os.path.getsize(f) for f in files if f.exists())
    verifier = Verifier(key)
    done = 0
    for path in files:
        label = str(path)
        size = os.path.getsize(path)
        feed = verifier.feed
        for lineno, line in enumerate(_iter_lines(path), 1):
            feed(label, lineno, line)
            if progress is not None and lineno % 65536 == 0:
                progress(done + min(size, lineno * 256), total)
        done += size
        if progress is not None:
            progress(done, total)
    report = verifier.finish(now=now, closed=closed)
    report.files = [str(f) for f in files]
    return report
