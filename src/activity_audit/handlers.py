"""Delivery: multi-process-safe files, stdout, a non-blocking queue (core: no Django).

:class:`AuditFileHandler`
    JSON lines appended to one file that several processes (gunicorn/uWSGI
    workers) share. Each batch of lines is one ``write()`` on an ``O_APPEND``
    descriptor, so lines never interleave; writers hold a shared ``flock`` on a
    lock file beside the log while they check the file is still the live one
    and write, and rotation (by size or time, optionally gzipping the rotated
    file) takes the lock exclusively, so no line lands in a file after it was
    rotated away. Rotated files are named as the stdlib names them
    (``audit.log.1`` …, ``audit.log.2025-08-16``).

:class:`AuditStreamHandler`
    The same lines on standard output (containers), one per line, flushed.

:class:`AuditQueueHandler` / :class:`AuditQueueListener`
    The calling thread formats the record and enqueues it; one writer thread
    does the I/O in batches. Built with :func:`async_file_handler` /
    :func:`async_stream_handler` through ``dictConfig``'s ``"()"`` key.

With an integrity key every handler seals its lines into a hash chain (see
:mod:`activity_audit.integrity`). Failures (unwritable directory, disk full, a
file removed) never reach the application: the first failure of a burst goes
to :meth:`logging.Handler.handleError`, lines are kept (bounded) and written
when the cause goes away. A rotation that fails after its lines were written is
reported the same way; the lines stay written, once, and rotation is retried.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import fcntl
import gzip
import logging
import logging.handlers
import os
import queue
import shutil
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, Final, Literal, cast

from activity_audit import _json
from activity_audit.formatters import AuditFormatter, _BaseJSONFormatter, format_timestamp
from activity_audit.integrity import DEFAULT_CHECKPOINT_INTERVAL, Chain
from activity_audit.schema import DIAGNOSTIC_LOGGER

__all__ = [
    "AuditFileHandler",
    "AuditQueueHandler",
    "AuditQueueListener",
    "AuditStreamHandler",
    "async_file_handler",
    "async_stream_handler",
    "coalesced_writes",
    "direct_handlers",
    "enable_integrity",
    "make_async",
]

#: Attribute :class:`AuditQueueHandler` puts the formatted line in.
LINE_ATTR: Final = "audit_line"
#: Lines kept in memory while the destination fails, before the oldest go.
DEFAULT_MAX_PENDING_BYTES: Final = 16 * 1024 * 1024
DEFAULT_QUEUE_SIZE: Final = 10_000
# One write() per batch, capped so rotation stays close to maxBytes.
_MAX_BATCH_BYTES: Final = 256 * 1024
_MAX_BATCH_RECORDS: Final = 1024
_GATHER_SECONDS: Final = 0.002

FullPolicy = Literal["block", "drop"]
# What the stdlib QueueListener uses to end its thread.
_SENTINEL: Final = None

_live_handlers: weakref.WeakSet[_LineHandler] = weakref.WeakSet()
#: A record, or what builds one only when a failure must be reported with it.
RecordSource = logging.LogRecord | Callable[[], logging.LogRecord]


def _record_of(source: RecordSource) -> logging.LogRecord:
    return source if isinstance(source, logging.LogRecord) else source()


class _Lines:
    """Lines formatted already, queued for the writer instead of a record.

    What :meth:`AuditQueueHandler.write_lines` enqueues for
    :func:`direct_handlers`: no record is built on the caller's thread unless a
    failure must be reported (``source`` builds it).
    """

    __slots__ = ("levelno", "lines", "source")

    def __init__(self, lines: list[bytes], source: RecordSource, levelno: int) -> None:
        self.lines = lines
        self.source = source
        self.levelno = levelno


class _Coalescing(threading.local):
    #: While :func:`coalesced_writes` is open: handler -> (lines, first record).
    held: dict[_LineHandler, tuple[list[bytes], RecordSource]] | None = None


_coalescing = _Coalescing()
_live_queue_handlers: weakref.WeakSet[AuditQueueHandler] = weakref.WeakSet()


def _notice(message: str, **fields: Any) -> bytes:
    """A JSON line the delivery layer writes about itself (drops, losses)."""
    return _json.dumps({
        "timestamp": format_timestamp(time.time()), "level": "WARNING",
        "name": DIAGNOSTIC_LOGGER, "message": message, **fields,
    })


class _RotationFailed(OSError):
    """The data was written, but rotating the file around the write failed.

    Raised by a file sink only for the first failure of a burst (until a
    rotation succeeds); the cause is chained.
    """


class _LineHandler(logging.Handler):
    """Formats records into lines, chains them, writes batches, survives failures.

    Subclasses implement :meth:`_write` (raise ``OSError`` on failure, or
    :class:`_RotationFailed` when the data was written but what followed
    failed) and :meth:`_close_sink`.
    """

    def __init__(self, level: int | str = logging.NOTSET, *,
                 integrity_key: str | bytes | None = None,
                 checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
                 max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
                 encoding: str | None = "utf-8") -> None:
        super().__init__(level)
        assert self.lock is not None  # createLock() ran; kept (reinitialised) across fork
        self._rlock = self.lock
        # Audit channels need no named formatter; dictConfig's "formatter" replaces it.
        self.setFormatter(AuditFormatter())
        self.encoding = encoding or "utf-8"
        self._utf8 = codecs.lookup(self.encoding).name == "utf-8"
        self.checkpoint_interval = checkpoint_interval
        self.max_pending_bytes = max_pending_bytes
        self.integrity_key: str | bytes | None = None
        self._chain: Chain | None = None
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        #: Lines dropped because the destination failed longer than the buffer lasted.
        self.lost = 0
        self._unreported_lost = 0
        self._failing = False
        # A rotation failure met without a record to report it with (a tick, a flush).
        self._unreported_rotation: _RotationFailed | None = None
        #: Set by a queue listener that drives this handler (it also ticks it).
        self.driven = False
        self._ticker: threading.Thread | None = None
        self._ticker_stop = threading.Event()
        if integrity_key:
            self.set_integrity_key(integrity_key)
        _live_handlers.add(self)

    # -- integrity -----------------------------------------------------------------------

    def set_integrity_key(self, key: str | bytes | None) -> None:
        """Seal lines with ``key`` from now on (None: stop chaining after closing the chain)."""
        with self._rlock:
            self._end_chain()
            self.integrity_key = key or None
            self._chain = (Chain(key, self.checkpoint_interval) if key else None)

    def _end_chain(self) -> None:
        chain = self._chain
        if chain is not None and chain.started:
            self._deliver([chain.end()], False, seal=False)
            self._chain = Chain(chain.key, self.checkpoint_interval)

    def _start_ticker(self) -> None:
        # An undriven handler with a chain needs its own clock for idle checkpoints.
        ticker = self._ticker
        if ticker is not None and ticker.is_alive():
            return
        self._ticker_stop = threading.Event()
        ref = weakref.ref(self)
        stop = self._ticker_stop
        interval = max(min(self.checkpoint_interval / 2, 30.0), 0.05)

        def run() -> None:
            while not stop.wait(interval):
                handler = ref()
                if handler is None:
                    return
                handler.tick()
                del handler

        self._ticker = threading.Thread(target=run, name="activity_audit-checkpoint",
                                        daemon=True)
        self._ticker.start()

    # -- writing -------------------------------------------------------------------------

    def format_line(self, record: logging.LogRecord) -> bytes:
        """The record's line as bytes: the queue handler's pre-formatted one, or formatted."""
        line = record.__dict__.get(LINE_ATTR)
        if not isinstance(line, str):
            formatter = self.formatter
            if self._utf8 and isinstance(formatter, _BaseJSONFormatter):
                return formatter.format_bytes(record)
            line = self.format(record)
        return line.encode(self.encoding, "backslashreplace")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit_lines([self.format_line(record)], record)
        except Exception:
            self.handleError(record)

    def write_lines(self, lines: list[bytes], record: RecordSource,
                    levelno: int = logging.NOTSET) -> None:
        """Write lines formatted already, as :meth:`handle` writes a record's line.

        For :func:`direct_handlers`: ``record`` builds the record that a failure
        is reported with (:meth:`handleError`) only when there is one;
        ``levelno`` is the lines' level (checked already).
        """
        with self._rlock:
            try:
                self._emit_lines(lines, record)
            except Exception:
                self.handleError(_record_of(record))

    def _emit_lines(self, lines: list[bytes], record: RecordSource) -> None:
        if self._chain is not None and not self.driven:
            self._start_ticker()
        held = _coalescing.held
        if held is not None:
            entry = held.get(self)
            if entry is None:
                held[self] = (list(lines), record)
            else:
                entry[0].extend(lines)
            return
        self._deliver(lines, True)

    def handle_batch(self, records: Sequence[logging.LogRecord | _Lines]) -> None:
        """Write ``records`` (level and filters applied) in as few writes as possible."""
        lines: list[bytes] = []
        first: RecordSource | None = None
        for record in records:
            if isinstance(record, _Lines):
                # Queued by direct_handlers(), which checked the filters.
                if record.levelno < self.level:
                    continue
                if first is None:
                    first = record.source
                lines.extend(record.lines)
                continue
            if record.levelno < self.level or not self.filter(record):
                continue
            if first is None:
                first = record
            try:
                lines.append(self.format_line(record))
            except Exception:
                self.handleError(record)
        if first is None:
            return
        with self._rlock:
            try:
                self._deliver(lines, True)
            except Exception:
                self.handleError(_record_of(first))

    def tick(self) -> None:
        """Periodic work: an idle chain's checkpoint, a retry of lines kept after a failure."""
        with self._rlock:
            try:
                now = time.time()
                chain = self._chain
                if chain is not None and chain.checkpoint_due(now):
                    self._deliver([chain.checkpoint(now)], False, seal=False)
                elif self._pending:
                    self._deliver([], False)
            except Exception:
                # The failure was reported when the burst began; handleError needs a record.
                pass

    def _deliver(self, lines: list[bytes], report: bool, *, seal: bool = True) -> None:
        """Seal, join and write ``lines``; on failure keep them and report once per burst.

        Reporting is raising, for the caller's :meth:`handleError`; with ``report``
        false (a tick, a flush: no record to report with) failures are kept for
        the next write that can. Called with the handler lock held.
        """
        chain = self._chain
        if chain is not None and seal and lines:
            lines = chain.seal_lines(lines)
        if lines and not self._pending and not self._unreported_lost:
            # The usual case, nothing kept from a failure: write straight away and
            # keep the data only if the write fails (with the leaner write below:
            # 8.8 -> 6.6 us per line, most of the rest is the five syscalls).
            data = lines[0] + b"\n" if len(lines) == 1 else b"\n".join(lines) + b"\n"
            try:
                self._write(data)
            except _RotationFailed as exc:
                # Written: never keep it, or the lines would be written twice.
                self._failing = False
                self._report_rotation(exc, report)
                return
            except OSError as exc:
                written = getattr(exc, "written", 0)
                self._pending.append(data[written:] if written else data)
                self._pending_bytes += len(data) - written
                if self._failing:
                    return
                self._failing = True
                if not report:
                    return
                raise
            self._failing = False
            if self._unreported_rotation is not None and report:
                self._report_rotation(self._unreported_rotation, report)
            return
        if lines:
            # Not appended to ``lines``: several handlers may share the list.
            self._pending.append(b"\n".join(lines) + b"\n")
            self._pending_bytes += len(self._pending[-1])
        if not self._pending:
            return
        rotation: _RotationFailed | None = None
        try:
            if self._unreported_lost:
                # Where the gap is: before the oldest line that was kept.
                rotation = self._write_data(
                    _notice("audit lines lost while the destination failed",
                            lost=self._unreported_lost) + b"\n") or rotation
                self._unreported_lost = 0
            while self._pending:
                rotation = self._write_data(self._pending[0]) or rotation
                self._pending_bytes -= len(self._pending.popleft())
        except OSError as exc:
            if rotation is not None:
                self._unreported_rotation = rotation
            written = getattr(exc, "written", 0)
            if written:
                self._pending[0] = self._pending[0][written:]
                self._pending_bytes -= written
            self._trim_pending()
            if self._failing:
                return
            self._failing = True
            if not report:
                return
            raise
        self._failing = False
        rotation = rotation or self._unreported_rotation
        if rotation is not None:
            self._report_rotation(rotation, report)

    def _write_data(self, data: bytes) -> _RotationFailed | None:
        """Write ``data``; a failed rotation is returned, since the data is written."""
        try:
            self._write(data)
        except _RotationFailed as exc:
            return exc
        return None

    def _report_rotation(self, exc: _RotationFailed, report: bool) -> None:
        """Raise ``exc`` for the caller's ``handleError``, or keep it for the next record."""
        if not report:
            self._unreported_rotation = exc
            return
        self._unreported_rotation = None
        raise exc

    def _trim_pending(self) -> None:
        while self._pending_bytes > self.max_pending_bytes and len(self._pending) > 1:
            chunk = self._pending.popleft()
            self._pending_bytes -= len(chunk)
            count = chunk.count(b"\n")
            self.lost += count
            self._unreported_lost += count

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _close_sink(self) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        with self._rlock:
            if self._pending:
                with contextlib.suppress(OSError):
                    self._deliver([], False)

    def close(self) -> None:
        self._ticker_stop.set()
        with self._rlock:
            try:
                self._end_chain()
                if self._pending:
                    self._deliver([], False)
                if self._pending:
                    raise OSError(
                        errno.EIO, f"{self._pending_bytes} bytes of audit lines not written")
            except Exception:
                self.handleError(logging.makeLogRecord(
                    {"name": DIAGNOSTIC_LOGGER, "msg": "closing an audit handler"}))
            finally:
                self._pending.clear()
                self._pending_bytes = 0
                self._close_sink()
        super().close()

    def _after_fork_in_child(self) -> None:
        # The parent owns what it buffered and its chain; the child starts clean.
        self._pending.clear()
        self._pending_bytes = 0
        self._failing = False
        self._unreported_rotation = None
        self._ticker = None
        self._ticker_stop = threading.Event()
        if self.integrity_key:
            self._chain = Chain(self.integrity_key, self.checkpoint_interval)


@contextlib.contextmanager
def coalesced_writes() -> Iterator[None]:
    """Within the block, this thread's lines for each audit handler are written at its end.

    Records still go through the logging system one by one (levels, filters,
    propagation, every other handler); only the file and stream handlers of this
    module hold their lines and write them in one ``write()`` per handler when
    the block ends -- in order, before the block returns. Used to emit the model
    events of a transaction when it commits. Nested blocks write with the outermost.
    """
    if _coalescing.held is not None:
        yield
        return
    held: dict[_LineHandler, tuple[list[bytes], RecordSource]] = {}
    _coalescing.held = held
    try:
        yield
    finally:
        _coalescing.held = None
        for handler, (lines, first) in held.items():
            with handler._rlock:
                try:
                    handler._deliver(lines, True)
                except Exception:
                    handler.handleError(_record_of(first))


# -- the shared append-only file ----------------------------------------------------------------

_WHEN_SECONDS: Final = {"S": 1, "M": 60, "H": 3600, "D": 86400, "MIDNIGHT": 86400}
_WHEN_SUFFIX: Final = {
    "S": "%Y-%m-%d_%H-%M-%S", "M": "%Y-%m-%d_%H-%M", "H": "%Y-%m-%d_%H",
    "D": "%Y-%m-%d", "MIDNIGHT": "%Y-%m-%d",
}


class _TimedSchedule:
    """Which period a moment belongs to, aligned as the stdlib's TimedRotatingFileHandler."""

    def __init__(self, when: str, interval: int, utc: bool) -> None:
        self.when = when.upper()
        self.utc = utc
        if self.when.startswith("W"):
            day = int(self.when[1:]) if self.when[1:].isdigit() else -1
            if not 0 <= day <= 6:
                raise ValueError(f"invalid weekly rollover day {when!r}: use W0..W6")
            self.weekday = day
            self.seconds = 7 * 86400
            self.suffix = "%Y-%m-%d"
        elif self.when in _WHEN_SECONDS:
            self.weekday = -1
            self.seconds = _WHEN_SECONDS[self.when] * max(int(interval), 1)
            self.suffix = _WHEN_SUFFIX[self.when]
        else:
            raise ValueError(f"invalid rollover interval {when!r}")

    def _local(self, moment: float) -> float:
        return moment if self.utc else moment + time.localtime(moment).tm_gmtoff

    def period(self, moment: float) -> int:
        local = self._local(moment)
        if self.weekday >= 0:
            # 1970-01-01 was a Thursday (weekday 3): weeks begin on self.weekday.
            return int((local // 86400 + 3 - self.weekday) // 7)
        return int(local // self.seconds)

    def label(self, period: int) -> str:
        if self.weekday >= 0:
            start = (period * 7 - 3 + self.weekday) * 86400
        else:
            start = period * self.seconds
        return time.strftime(self.suffix, time.gmtime(start))


#: How long after its last change a log directory is trusted not to change unseen.
_SETTLE_NS: Final = 1_000_000_000


class _SharedFile:
    """An O_APPEND file several processes write and rotate, coordinated by ``flock``."""

    def __init__(self, path: str, max_bytes: int, backup_count: int, schedule:
                 _TimedSchedule | None, compress: bool) -> None:
        self.path = path
        self.lock_path = os.path.join(os.path.dirname(path),
                                      f".{os.path.basename(path)}.lock")
        self.max_bytes = max_bytes if backup_count > 0 and schedule is None else 0
        self.backup_count = backup_count
        self.schedule = schedule
        self.compress = compress
        self.fd = -1
        self.lock_fd = -1
        self.directory = os.path.dirname(path)
        self.inode: tuple[int, int] | None = None
        #: The directory as it was when ``path`` was last seen to be our file (see
        #: :meth:`_still_ours`); None: look at the file itself next time.
        self.settled_directory: tuple[int, int, int, int] | None = None
        self.linked = False
        self.period = 0
        #: A rotation failed and was reported; cleared when one succeeds.
        self.rotation_failing = False

    def _open(self) -> None:
        self._close_fd()
        self.settled_directory = None
        directory = self.directory
        if self.lock_fd < 0:
            os.makedirs(directory, exist_ok=True)
            self.lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        st = os.fstat(fd)
        self.fd = fd
        self.inode = (st.st_dev, st.st_ino)
        # A symlink's target lives in another directory: then the file is always asked.
        self.linked = os.path.islink(self.path)
        if self.schedule is not None:
            # A file with content belongs to the period of its last write (as the stdlib).
            self.period = self.schedule.period(st.st_mtime if st.st_size else time.time())

    def _is_current(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self.inode

    def _still_ours(self) -> bool:
        """Whether ``path`` still names the file we write to (rotated, removed, replaced?).

        Asked before every write, from the directory: renaming, removing or
        creating an entry changes its modification time, so an unchanged
        directory means an unchanged ``path``. Asking the log file itself costs
        far more while the database's commits flush the filesystem (measured
        on ext4 with PostgreSQL: about 60 us per write, the directory's next to
        nothing). A directory changed less than a second ago is not trusted
        (its timestamps are coarser than the changes): the file is asked.
        """
        try:
            st = os.stat(self.directory)
        except OSError:
            return False
        state = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        if state == self.settled_directory:
            return True
        current = self._is_current()
        settled = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLE_NS
        self.settled_directory = state if current and settled and not self.linked else None
        return current

    def write(self, data: bytes) -> None:
        """Append ``data`` in one ``write()``: time rotation before it, size rotation after.

        Raises:
            _RotationFailed: ``data`` was written but a rotation failed (the first
                failure of a burst; the next write past the limit tries again).
            OSError: ``data`` was not written, or in part (``exc.written`` bytes).
        """
        if self.lock_fd < 0 or self.fd < 0:
            self._open()
        error: OSError | None = None
        rotated = False
        if self.schedule is not None and self.schedule.period(time.time()) != self.period:
            # Before writing, as the stdlib: a new period's first line opens its file.
            try:
                self._rotate()
                rotated = True
            except OSError as exc:
                error = exc
        lock_fd = self.lock_fd
        fcntl.flock(lock_fd, fcntl.LOCK_SH)
        try:
            # Under the shared lock no rotation runs: the live file stays live until we unlock.
            if not self._still_ours():
                self._open()
            fd = self.fd
            written = 0
            try:
                written = os.write(fd, data)
                if written < len(data):
                    # A short write: go on after it (no memoryview on the usual path).
                    view = memoryview(data)[written:]
                    while view:
                        n = os.write(fd, view)
                        written += n
                        view = view[n:]
            except OSError as exc:
                # A short write (disk full) left part of the data: resume after it.
                exc.written = written  # type: ignore[attr-defined]
                raise
            # Appending left the offset at the end of the file, other processes'
            # lines included (rotation checks it again under the exclusive lock).
            size = os.lseek(fd, 0, os.SEEK_CUR) if self.max_bytes else 0
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
        if error is None and self.max_bytes and size >= self.max_bytes:
            try:
                self._rotate()
                rotated = True
            except OSError as exc:
                error = exc
        if error is not None:
            if not self.rotation_failing:
                self.rotation_failing = True
                raise _RotationFailed(
                    f"rotating {self.path} failed ({error}); writing on to it, "
                    "retrying at the next write past the limit") from error
        elif rotated:
            self.rotation_failing = False

    def _rotate(self) -> None:
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        try:
            if not self._is_current():
                # Another process rotated first.
                self._open()
                return
            if self.max_bytes:
                if os.fstat(self.fd).st_size < self.max_bytes:
                    return
                rotated = self._shift_numbered()
            else:
                assert self.schedule is not None
                if self.schedule.period(time.time()) == self.period:
                    return
                rotated = self._dated_name()
            os.rename(self.path, rotated)
            self._open()
            # The rotation itself is done: a failure below leaves a backup uncompressed
            # or one too many, and must not stop pruning.
            error: OSError | None = None
            if self.compress:
                try:
                    self._gzip(rotated)
                    # Backups an earlier failure (disk full) left uncompressed.
                    for leftover in self._uncompressed_backups():
                        self._gzip(leftover)
                except OSError as exc:
                    error = exc
            if self.schedule is not None:
                try:
                    self._prune_dated()
                except OSError as exc:
                    error = error or exc
            if error is not None:
                raise error
        finally:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    def _shift_numbered(self) -> str:
        # One listing instead of probing every index up to backupCount.
        directory, name = os.path.split(self.path)
        prefix = name + "."
        existing: list[tuple[int, str]] = []
        for entry in os.listdir(directory):
            if not entry.startswith(prefix):
                continue
            suffix = entry[len(prefix):]
            ext = ".gz" if suffix.endswith(".gz") else ""
            number = suffix[: len(suffix) - len(ext)]
            if number.isdigit():
                existing.append((int(number), ext))
        for index, ext in sorted(existing, reverse=True):
            source = f"{self.path}.{index}{ext}"
            if index >= self.backup_count:
                os.remove(source)
            else:
                os.rename(source, f"{self.path}.{index + 1}{ext}")
        return f"{self.path}.1"

    def _dated_name(self) -> str:
        assert self.schedule is not None
        name = f"{self.path}.{self.schedule.label(self.period)}"
        candidate, n = name, 0
        # Never overwrite a backup (the stdlib would): add a counter instead.
        while os.path.exists(candidate) or os.path.exists(candidate + ".gz"):
            n += 1
            candidate = f"{name}.{n}"
        return candidate

    def _prune_dated(self) -> None:
        if self.backup_count <= 0:
            return
        directory, name = os.path.split(self.path)
        prefix = name + "."
        found = sorted(
            entry for entry in os.listdir(directory)
            if entry.startswith(prefix) and entry[len(prefix):][:1].isdigit()
            and not entry.endswith(".tmp")
        )
        for entry in found[: max(len(found) - self.backup_count, 0)]:
            os.remove(os.path.join(directory, entry))

    def _uncompressed_backups(self) -> list[str]:
        """Backups of this file that are not gzipped (none when compression never failed)."""
        directory, name = os.path.split(self.path)
        prefix = name + "."
        entries = set(os.listdir(directory))
        return [
            os.path.join(directory, entry) for entry in sorted(entries)
            if entry.startswith(prefix) and entry[len(prefix):][:1].isdigit()
            and not entry.endswith((".gz", ".tmp")) and entry + ".gz" not in entries
        ]

    def _gzip(self, path: str) -> None:
        # Under the exclusive lock: nobody writes to the rotated file any more.
        tmp = f"{path}.gz.tmp"
        try:
            with open(path, "rb") as source, gzip.open(tmp, "wb", compresslevel=6) as target:
                shutil.copyfileobj(source, target, 1024 * 1024)
            os.rename(tmp, f"{path}.gz")
        except OSError:
            # The uncompressed backup stays; no half-written copy beside it.
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        os.remove(path)

    def _close_fd(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def close(self) -> None:
        self._close_fd()
        if self.lock_fd >= 0:
            fd, self.lock_fd = self.lock_fd, -1
            os.close(fd)

    def forget_after_fork(self) -> None:
        # The lock descriptor is shared with the parent: its flock would not exclude
        # the parent. Reopen both in the child, which reports its own failures.
        self.close()
        self.rotation_failing = False


class AuditFileHandler(_LineHandler):
    """JSON lines in a file shared by several processes, rotated by size or time.

    Accepts the stdlib ``RotatingFileHandler`` arguments, so it replaces it in
    a ``LOGGING`` dict, and the ``TimedRotatingFileHandler`` ones (``when``,
    ``interval``, ``utc``): with ``when`` set, files rotate by time only.

    Args:
        filename: the log file; its directory is created when missing.
        mode: only appending is supported (kept for compatibility).
        maxBytes: rotate when the file reaches this size (0: never).
        backupCount: rotated files kept (0: no rotation).
        encoding: of the lines.
        delay: accepted for compatibility; the file is always opened on first write.
        when, interval, utc: time-based rotation, as the stdlib's.
        compress: gzip rotated files (``audit.log.1.gz``).
        integrity_key: seal lines in a hash chain with this key.
        checkpoint_interval: seconds between checkpoints of an idle chain.
        max_pending_bytes: lines kept while the file cannot be written.
    """

    def __init__(self, filename: str | os.PathLike[str], mode: str = "a", maxBytes: int = 0,
                 backupCount: int = 0, encoding: str | None = "utf-8", delay: bool = True,
                 errors: str | None = None, *, when: str | None = None, interval: int = 1,
                 utc: bool = False, compress: bool = False,
                 integrity_key: str | bytes | None = None,
                 checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
                 max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
                 level: int | str = logging.NOTSET) -> None:
        if mode not in ("a", "ab", "at"):
            raise ValueError("AuditFileHandler only appends (mode='a')")
        self.baseFilename = os.path.abspath(os.fspath(filename))
        self.maxBytes = int(maxBytes)
        self.backupCount = int(backupCount)
        schedule = _TimedSchedule(when, interval, utc) if when else None
        self._file = _SharedFile(self.baseFilename, self.maxBytes, self.backupCount, schedule,
                                 compress)
        super().__init__(level, integrity_key=integrity_key,
                         checkpoint_interval=checkpoint_interval,
                         max_pending_bytes=max_pending_bytes, encoding=encoding)
        with contextlib.suppress(OSError):
            # Created now when possible; if not, the first write reports why
            # (an uncreatable directory never stops the application starting).
            os.makedirs(os.path.dirname(self.baseFilename), exist_ok=True)

    def _write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except _RotationFailed:
            raise  # written, and the file is open on the live log
        except OSError:
            # Reopen on the next attempt: the file may be gone, the disk freed.
            self._file.close()
            raise

    def _close_sink(self) -> None:
        self._file.close()

    def _after_fork_in_child(self) -> None:
        self._file.forget_after_fork()
        super()._after_fork_in_child()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.baseFilename} ({logging.getLevelName(self.level)})>"


class AuditStreamHandler(_LineHandler):
    """JSON lines on a stream (default: the current ``sys.stdout``), flushed per batch.

    Args:
        stream: a text stream; None means whatever ``sys.stdout`` is at write time.
        integrity_key, checkpoint_interval, max_pending_bytes: as :class:`AuditFileHandler`.
    """

    def __init__(self, stream: IO[str] | None = None, *,
                 integrity_key: str | bytes | None = None,
                 checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
                 max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
                 level: int | str = logging.NOTSET) -> None:
        self.stream = stream
        super().__init__(level, integrity_key=integrity_key,
                         checkpoint_interval=checkpoint_interval,
                         max_pending_bytes=max_pending_bytes)

    def _write(self, data: bytes) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        if stream is None:
            raise OSError(errno.EBADF, "no standard output")
        try:
            stream.write(data.decode(self.encoding, "backslashreplace"))
            stream.flush()
        except ValueError as exc:  # write to a closed stream
            raise OSError(errno.EBADF, str(exc)) from exc

    def _close_sink(self) -> None:
        return


_DIRECT_TYPES: Final = frozenset({AuditFileHandler, AuditStreamHandler})


def _takes_lines(handlers: Iterable[logging.Handler]) -> bool:
    """Whether every one of ``handlers`` is a file or stream handler of ours, unfiltered, UTF-8."""
    return all(
        type(handler) in _DIRECT_TYPES
        and not handler.filters
        and handler._utf8  # type: ignore[attr-defined]
        for handler in handlers
    )


def direct_handlers(logger: logging.Logger,
                    level: int) -> list[_LineHandler | AuditQueueHandler] | None:
    """``logger``'s handlers, when handing them lines instead of records changes nothing.

    That is when the logger is a plain :class:`logging.Logger` with no filter
    that does not propagate to handlers, the record factory is the stdlib's,
    and every handler is a file or stream handler of this module (not a
    subclass) with no filter, formatting with a plain :class:`AuditFormatter`
    in UTF-8 -- or an :class:`AuditQueueHandler` with no filter and a plain
    :class:`AuditFormatter` whose :class:`AuditQueueListener` writes only to
    such handlers (the ``get_async_*`` helpers): no one could see the record,
    and the line (:func:`~activity_audit.formatters.audit_line`) is the one
    each handler would format. The caller made sure the logger is enabled for ``level``.
    Anything else (``assertLogs``, a filter, another handler, a custom record
    factory) returns None: records go through the logging system as usual.
    """
    if (
        type(logger) is not logging.Logger
        or logger.filters
        or logging.getLogRecordFactory() is not logging.LogRecord
    ):
        return None
    handlers = logger.handlers
    if not handlers:
        return None
    for handler in handlers:
        if type(handler) is AuditQueueHandler:
            # Its line is formatted here by its formatter; the writer's handlers
            # take it as it is when they are ours and unfiltered.
            listener = handler.listener
            if (
                handler.filters
                or type(handler.formatter) is not AuditFormatter
                or not isinstance(listener, AuditQueueListener)
                or not _takes_lines(listener.handlers)
            ):
                return None
        elif not _takes_lines((handler,)) or type(handler.formatter) is not AuditFormatter:
            return None
    if logger.propagate:
        parent = logger.parent
        while parent is not None:
            if parent.handlers:
                return None
            if not parent.propagate:
                break
            parent = parent.parent
    return [h for h in handlers if level >= h.level]  # type: ignore[misc]


# -- the non-blocking path -------------------------------------------------------------------


class AuditQueueListener(logging.handlers.QueueListener):
    """A :class:`~logging.handlers.QueueListener` that writes in batches and ticks.

    Records waiting in the queue are taken together and handed to handlers
    that have ``handle_batch`` (ours) in one call, so one ``write()`` carries
    many lines. While idle it wakes every ``tick_interval`` seconds for the
    handlers' periodic work (chain checkpoints, retries after a failure).
    """

    def __init__(self, queue: Any, *handlers: logging.Handler,
                 respect_handler_level: bool = True, tick_interval: float = 1.0) -> None:
        super().__init__(queue, *handlers, respect_handler_level=respect_handler_level)
        self.tick_interval = tick_interval
        self.source: AuditQueueHandler | None = None
        self._pid = os.getpid()
        #: Set in a fork child: the writer starts on the child's first event.
        self.needs_start = False
        for handler in handlers:
            if isinstance(handler, _LineHandler):
                handler.driven = True

    def start(self) -> None:
        """Start the writer thread (in this process)."""
        self._pid = os.getpid()
        self.needs_start = False
        super().start()

    def enqueue_sentinel(self) -> None:
        # The stdlib's put_nowait would fail on a full bounded queue.
        cast("queue.Queue[Any]", self.queue).put(_SENTINEL)

    def is_alive(self) -> bool:
        """Whether the writer thread runs in this process."""
        thread = self._thread
        return thread is not None and self._pid == os.getpid() and thread.is_alive()

    def stop(self) -> None:
        """Write everything enqueued so far, then end the writer thread."""
        if self.is_alive():
            super().stop()
        self._thread = None

    def _monitor(self) -> None:
        q = cast("queue.Queue[Any]", self.queue)
        has_task_done = hasattr(q, "task_done")
        sentinel = _SENTINEL
        while True:
            try:
                first = q.get(True, self.tick_interval)
            except queue.Empty:
                self._tick()
                continue
            batch: list[logging.LogRecord | _Lines] = []
            stop = first is sentinel
            if not stop and q.qsize() < _MAX_BATCH_RECORDS:
                # Let a batch gather: one wake-up and one write() per many lines
                # instead of a thread switch per record.
                time.sleep(_GATHER_SECONDS)
            if not stop:
                batch.append(first)
                size = 0
                while len(batch) < _MAX_BATCH_RECORDS and size < _MAX_BATCH_BYTES:
                    try:
                        item = q.get_nowait()
                    except queue.Empty:
                        break
                    if item is sentinel:
                        stop = True
                        break
                    batch.append(item)
                    # Measured here, in the writer, not on the caller's thread.
                    size += (sum(map(len, item.lines)) if type(item) is _Lines
                             else len(item.__dict__.get(LINE_ATTR) or ""))
            taken = len(batch) + (1 if stop else 0)
            with contextlib.suppress(Exception):
                # Each handler reported its failure through handleError already.
                self._handle_batch(batch)
            if has_task_done:
                for _ in range(taken):
                    q.task_done()
            if stop:
                break

    def _handle_batch(self, batch: list[logging.LogRecord | _Lines]) -> None:
        source = self.source
        if source is not None and source.unreported_drops:
            drops = source.take_unreported_drops()
            batch.append(logging.makeLogRecord({
                "name": DIAGNOSTIC_LOGGER, "levelno": logging.WARNING, "levelname": "WARNING",
                LINE_ATTR: _notice("audit events dropped: queue full",
                                   dropped=drops).decode("utf-8"),
            }))
        if not batch:
            return
        for handler in self.handlers:
            if isinstance(handler, _LineHandler):
                handler.handle_batch(batch)
                continue
            for record in batch:
                if not self.respect_handler_level or record.levelno >= handler.level:
                    handler.handle(_record_of(record.source) if isinstance(record, _Lines)
                                   else record)

    def _tick(self) -> None:
        for handler in self.handlers:
            tick = getattr(handler, "tick", None)
            if tick is not None:
                tick()


class AuditQueueHandler(logging.handlers.QueueHandler):
    """Formats in the caller's thread and enqueues; the listener's thread writes.

    The constructor takes what the stdlib's does, so ``dictConfig`` on 3.12+
    may also build it from ``"class"`` with ``handlers`` and
    ``"listener": "activity_audit.handlers.AuditQueueListener"``. The usual
    way is :func:`async_file_handler` through ``"()"``, which works on every
    supported Python and starts the writer.

    Args:
        queue: a bounded :class:`queue.Queue`.
        full_policy: ``"block"`` (default) waits for room -- never drops;
            ``"drop"`` counts what it drops (:attr:`dropped`) and the writer
            reports the count in the log itself.
    """

    def __init__(self, queue: Any, full_policy: FullPolicy = "block") -> None:
        self._listener: Any = None
        super().__init__(queue)
        if full_policy not in ("block", "drop"):
            raise ValueError("full_policy must be 'block' or 'drop'")
        self.full_policy = full_policy
        self.listener = None
        self.setFormatter(AuditFormatter())
        #: Events dropped because the queue was full (``drop`` policy only).
        self.dropped = 0
        self.unreported_drops = 0
        self._drop_lock = threading.Lock()
        _live_queue_handlers.add(self)

    @property
    def listener(self) -> Any:
        """The writer; ours learns its source, however it was attached.

        Set by :func:`make_async`, and by ``dictConfig`` itself on 3.12+ when it
        builds this class from ``"class"``: either way the listener reports this
        handler's drops in the log.
        """
        return self._listener

    @listener.setter
    def listener(self, listener: Any) -> None:
        self._listener = listener
        if isinstance(listener, AuditQueueListener):
            listener.source = self

    def prepare(self, record: logging.LogRecord) -> Any:
        """Format in the caller's thread and keep the line for the writer.

        As the stdlib's ``prepare``: the queued record is a copy whose message
        is the formatted line and which holds no exception or arguments (they
        may not be picklable or thread-safe). The copy is a plain dict copy:
        ``copy.copy`` costs several times more on the caller's thread.
        """
        line = self.format(record)
        prepared = logging.LogRecord.__new__(type(record))
        attrs = record.__dict__.copy()
        attrs.update(message=line, msg=line, args=None, exc_info=None, exc_text=None,
                     stack_info=None)
        attrs[LINE_ATTR] = line
        prepared.__dict__ = attrs
        return prepared

    def enqueue(self, record: logging.LogRecord | _Lines) -> None:
        listener = self.listener
        if listener is not None and not _alive(listener):
            if getattr(listener, "needs_start", False):
                with self._drop_lock:
                    if listener.needs_start:
                        listener.start()
            else:
                # No writer (stopped at exit, or never started): write here, lose nothing.
                self._write_through(listener, record)
                return
        try:
            self.queue.put_nowait(record)
            return
        except queue.Full:
            if self.full_policy == "drop":
                # Counted in events: one queued item may carry a transaction's lines.
                count = len(record.lines) if isinstance(record, _Lines) else 1
                with self._drop_lock:
                    self.dropped += count
                    self.unreported_drops += count
                return
        while True:
            try:
                cast("queue.Queue[Any]", self.queue).put(record, True, 0.5)
                return
            except queue.Full:
                if listener is not None and not _alive(listener):
                    self._write_through(listener, record)
                    return

    def write_lines(self, lines: list[bytes], record: RecordSource,
                    levelno: int = logging.NOTSET) -> None:
        """Queue lines formatted already: :func:`direct_handlers`' path, no record built.

        ``levelno``, the lines' level, is what the writer's handlers are checked with.
        """
        try:
            self.enqueue(_Lines(lines, record, levelno))
        except Exception:
            self.handleError(_record_of(record))

    def _write_through(self, listener: logging.handlers.QueueListener,
                       record: logging.LogRecord | _Lines) -> None:
        for handler in listener.handlers:
            if record.levelno < handler.level:
                continue
            if isinstance(record, _Lines):
                if isinstance(handler, _LineHandler):
                    handler.write_lines(record.lines, record.source)
                else:
                    handler.handle(_record_of(record.source))
            else:
                handler.handle(record)

    def take_unreported_drops(self) -> int:
        with self._drop_lock:
            count, self.unreported_drops = self.unreported_drops, 0
        return count

    def flush(self) -> None:
        """Wait until everything enqueued so far is written (bounded by 10 s)."""
        listener = self.listener
        if listener is None or not _alive(listener):
            return
        deadline = time.monotonic() + 10.0
        q = self.queue
        while getattr(q, "unfinished_tasks", 0) and time.monotonic() < deadline:
            time.sleep(0.001)

    def close(self) -> None:
        """Drain the queue to disk, stop the writer and close the target handlers."""
        listener = self.listener
        try:
            if listener is not None:
                # A stdlib listener (dictConfig's "listener" on 3.12+) fails to stop twice.
                if getattr(listener, "_thread", None) is not None:
                    listener.stop()
                for handler in listener.handlers:
                    handler.close()
        finally:
            super().close()

    def _after_fork_in_child(self) -> None:
        self._drop_lock = threading.Lock()
        listener = self.listener
        if listener is None:
            return
        # The parent's queue may hold its records and locks held by its threads:
        # the child gets a fresh queue and its own writer.
        maxsize = getattr(self.queue, "maxsize", 0)
        self.queue = queue.Queue(maxsize)
        listener.queue = self.queue
        listener._thread = None
        listener.needs_start = True


def _alive(listener: logging.handlers.QueueListener) -> bool:
    # No pid check here (hot path): after fork the child's hook clears _thread.
    thread = getattr(listener, "_thread", None)
    return thread is not None and thread.is_alive()


def make_async(target: logging.Handler, *, queue_size: int = DEFAULT_QUEUE_SIZE,
               full_policy: FullPolicy = "block", tick_interval: float = 1.0,
               level: int | str = logging.NOTSET) -> AuditQueueHandler:
    """Put ``target`` behind a bounded queue and a started writer thread."""
    handler = AuditQueueHandler(queue.Queue(queue_size), full_policy=full_policy)
    handler.setLevel(level)
    listener = AuditQueueListener(handler.queue, target, tick_interval=tick_interval)
    handler.listener = listener
    listener.start()
    return handler


def async_file_handler(filename: str | os.PathLike[str], maxBytes: int = 0,
                       backupCount: int = 0, *, queue_size: int = DEFAULT_QUEUE_SIZE,
                       full_policy: FullPolicy = "block", tick_interval: float = 1.0,
                       **file_options: Any) -> AuditQueueHandler:
    """An :class:`AuditFileHandler` behind a queue: the ``"()"`` factory for dictConfig.

    ``file_options`` are :class:`AuditFileHandler`'s keyword arguments. The
    formatter (AuditFormatter unless ``"formatter"`` is given) runs in the
    caller's thread.
    """
    target = AuditFileHandler(filename, maxBytes=maxBytes, backupCount=backupCount,
                              **file_options)
    return make_async(target, queue_size=queue_size, full_policy=full_policy,
                      tick_interval=tick_interval)


def async_stream_handler(stream: IO[str] | None = None, *,
                         queue_size: int = DEFAULT_QUEUE_SIZE,
                         full_policy: FullPolicy = "block", tick_interval: float = 1.0,
                         **stream_options: Any) -> AuditQueueHandler:
    """An :class:`AuditStreamHandler` (stdout by default) behind a queue."""
    target = AuditStreamHandler(stream, **stream_options)
    return make_async(target, queue_size=queue_size, full_policy=full_policy,
                      tick_interval=tick_interval)


def _line_handlers(handlers: Iterable[logging.Handler]) -> Iterable[_LineHandler]:
    for handler in handlers:
        if isinstance(handler, _LineHandler):
            yield handler
        elif isinstance(handler, AuditQueueHandler) and handler.listener is not None:
            yield from _line_handlers(handler.listener.handlers)


def enable_integrity(key: str | bytes, logger_names: Iterable[str]) -> int:
    """Seal with ``key`` every handler of ours reachable from ``logger_names``.

    Handlers that already have a key keep theirs. Returns how many were changed.
    """
    seen: set[int] = set()
    changed = 0
    for name in logger_names:
        logger: logging.Logger | None = logging.getLogger(name)
        while logger is not None:
            for handler in _line_handlers(logger.handlers):
                if id(handler) in seen:
                    continue
                seen.add(id(handler))
                if handler.integrity_key is None:
                    handler.set_integrity_key(key)
                    changed += 1
            if not logger.propagate:
                break
            logger = logger.parent
    return changed


def _after_fork_in_child() -> None:
    for handler in list(_live_handlers):
        handler._after_fork_in_child()
    for queue_handler in list(_live_queue_handlers):
        queue_handler._after_fork_in_child()


def _before_fork() -> None:
    # Records enqueued before fork() are written by the parent, once: the child's
    # copy of the queue is discarded.
    for queue_handler in list(_live_queue_handlers):
        with contextlib.suppress(Exception):
            queue_handler.flush()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
