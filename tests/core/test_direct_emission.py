"""Events handed to this package's handlers as lines: the same lines, the same failures.

``events.emit`` skips the LogRecord when no one could see it (only our file and
stream handlers, unfiltered, with their own formatter); everything else still
gets records. These tests pin that both paths write the same thing and that
the shortcut steps aside whenever anything could observe the record.
"""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import queue
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from activity_audit import events
from activity_audit.formatters import AuditFormatter, JSONFormatter
from activity_audit.handlers import (
    LINE_ATTR,
    AuditFileHandler,
    AuditQueueHandler,
    AuditStreamHandler,
    coalesced_writes,
    direct_handlers,
    make_async,
)
from activity_audit.schema import CHANNEL_LEVELS, LOGIN_LOGGER, MODEL_LOGGER, REQUEST_LOGGER

EVENTS: dict[str, dict[str, Any]] = {
    MODEL_LOGGER: {
        "model": "Patient", "app_label": "clinic", "event_type": "UPDATE", "instance_id": "7",
        "instance_repr": {"name": "Ada\r\nBob", "balance": Decimal("10.50")},
        "changes": {"name": {"old": "Ada", "new": "Ada\r\nBob"}}, "user_id": None,
        "user_info": {}, "request_id": "r-1", "service_name": "svc", "extra": {"k": [1]},
    },
    REQUEST_LOGGER: {
        "service_name": "svc", "request_type": "internal", "protocol": "http",
        "user_id": "5", "user_info": {"email": "a@b.c"},
        "request_repr": {"method": "GET", "path": "/x\u2028"},
        "response_repr": {"status_code": 200}, "error_message": None,
        "execution_time": 0.25, "request_id": "r-2",
    },
    LOGIN_LOGGER: {
        "event_type": "LOGIN", "success": True, "user_id": "5", "username": "ada",
        "request_id": "r-3", "service_name": "svc",
    },
}


class Recorder(AuditFileHandler):
    """A subclass: records go to it as records (it is not a handler we can skip)."""


@pytest.fixture
def channel() -> Iterator[Callable[[str], logging.Logger]]:
    """A channel logger stripped for the test, restored afterwards."""
    saved: list[tuple[logging.Logger, list[logging.Handler], list[Any], bool]] = []

    def take(name: str) -> logging.Logger:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.filters[:], logger.propagate))
        logger.handlers = []
        logger.filters = []
        logger.propagate = False
        logger.setLevel(CHANNEL_LEVELS[name])
        return logger

    yield take
    for logger, handlers, filters, propagate in saved:
        for handler in logger.handlers:
            handler.close()
        logger.handlers = handlers
        logger.filters = filters
        logger.propagate = propagate
        logger.setLevel(logging.NOTSET)


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("name", list(EVENTS))
def test_line_handed_over_is_the_line_the_formatter_makes(
        tmp_path: Path, channel: Callable[[str], logging.Logger], name: str) -> None:
    logger = channel(name)
    direct, recorded = tmp_path / "direct.log", tmp_path / "recorded.log"
    logger.addHandler(AuditFileHandler(direct))
    assert direct_handlers(logger, CHANNEL_LEVELS[name]) is not None
    events.emit(name, "the message", EVENTS[name])
    logger.handlers[0].close()
    logger.handlers = [Recorder(recorded)]
    assert direct_handlers(logger, CHANNEL_LEVELS[name]) is None
    events.emit(name, "the message", EVENTS[name])

    (one,), (other,) = lines_of(direct), lines_of(recorded)
    assert one.pop("timestamp")
    assert other.pop("timestamp")
    assert list(one) == list(other)  # same keys, same order
    assert one == other
    assert len(direct.read_bytes().splitlines()) == 1  # CR/LF in values stay escaped


def test_many_events_are_one_write_in_order_and_nest(
        tmp_path: Path, channel: Callable[[str], logging.Logger]) -> None:
    logger = channel(MODEL_LOGGER)
    path = tmp_path / "audit.log"
    handler = AuditFileHandler(path)
    logger.addHandler(handler)
    writes: list[bytes] = []
    real_write = handler._write

    def counting(data: bytes) -> None:
        writes.append(data)
        real_write(data)

    handler._write = counting  # type: ignore[method-assign]
    batch = [(f"m{i}", {**EVENTS[MODEL_LOGGER], "instance_id": str(i)}) for i in range(5)]
    with coalesced_writes():
        events.emit(MODEL_LOGGER, "before", EVENTS[MODEL_LOGGER])
        events.emit_many(MODEL_LOGGER, batch)
    events.emit_many(MODEL_LOGGER, batch)
    assert len(writes) == 2
    messages = [line["message"] for line in lines_of(path)]
    assert messages == ["before", *(m for m, _ in batch), *(m for m, _ in batch)]


class Counted(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.seen.append(record)
        return True


def _logger_filter(logger: logging.Logger, handler: logging.Handler, seen: Counted,
        undo: list[Callable[[], None]]) -> None:
    logger.addFilter(seen)


def _handler_filter(logger: logging.Logger, handler: logging.Handler, seen: Counted,
        undo: list[Callable[[], None]]) -> None:
    handler.addFilter(seen)


def _other_formatter(logger: logging.Logger, handler: logging.Handler, seen: Counted,
        undo: list[Callable[[], None]]) -> None:
    class Seeing(AuditFormatter):
        def format_event(self, record: logging.LogRecord) -> dict[str, Any]:
            seen.filter(record)
            return super().format_event(record)

    handler.setFormatter(Seeing())


def _json_formatter(logger: logging.Logger, handler: logging.Handler, seen: Counted,
        undo: list[Callable[[], None]]) -> None:
    handler.setFormatter(JSONFormatter())
    logger.addFilter(seen)


def _another_handler(logger: logging.Logger, handler: logging.Handler, seen: Counted,
        undo: list[Callable[[], None]]) -> None:
    other = logging.StreamHandler(io.StringIO())
    other.addFilter(seen)
    logger.addHandler(other)


def _propagates(logger: logging.Logger, handler: logging.Handler, seen: Counted,
        undo: list[Callable[[], None]]) -> None:
    parent = logging.getLogger(logger.name.rsplit(".", 1)[0])
    other = logging.StreamHandler(io.StringIO())
    other.addFilter(seen)
    parent.addHandler(other)
    logger.propagate = True
    undo.append(lambda: parent.removeHandler(other))


def _record_factory(logger: logging.Logger, handler: logging.Handler, seen: Counted,
        undo: list[Callable[[], None]]) -> None:
    default = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made = default(*args, **kwargs)
        seen.filter(made)
        return made

    logging.setLogRecordFactory(factory)
    undo.append(lambda: logging.setLogRecordFactory(default))


def _latin1(logger: logging.Logger, handler: logging.Handler, seen: Counted,
        undo: list[Callable[[], None]]) -> None:
    logger.removeHandler(handler)
    handler.close()
    logger.addHandler(AuditFileHandler(Path(handler.baseFilename), encoding="latin-1"))
    logger.addFilter(seen)


@pytest.mark.parametrize("change", [
    _logger_filter, _handler_filter, _other_formatter, _json_formatter, _another_handler,
    _propagates, _record_factory, _latin1,
])
def test_anything_that_could_see_the_record_gets_the_record(
        tmp_path: Path, channel: Callable[[str], logging.Logger],
        change: Callable[[logging.Logger, logging.Handler, Counted, list[Callable[[], None]]],
                         None]) -> None:
    logger = channel(MODEL_LOGGER)
    handler = AuditFileHandler(tmp_path / "audit.log")
    logger.addHandler(handler)
    seen = Counted()
    undo: list[Callable[[], None]] = []
    change(logger, handler, seen, undo)
    try:
        assert direct_handlers(logger, CHANNEL_LEVELS[MODEL_LOGGER]) is None
        events.emit(MODEL_LOGGER, "seen", EVENTS[MODEL_LOGGER])
        events.emit_many(MODEL_LOGGER, [("seen too", EVENTS[MODEL_LOGGER])])
    finally:
        for step in undo:
            step()
    assert [r.getMessage() for r in seen.seen] == ["seen", "seen too"]
    assert seen.seen[0].__dict__["model"] == "Patient"


def test_propagating_to_loggers_without_handlers_still_hands_over_lines(
        tmp_path: Path, channel: Callable[[str], logging.Logger],
        monkeypatch: pytest.MonkeyPatch) -> None:
    logger = channel(MODEL_LOGGER)
    logger.propagate = True
    handler = AuditFileHandler(tmp_path / "audit.log")
    logger.addHandler(handler)
    for parent in (logging.getLogger("audit"), logging.getLogger()):
        monkeypatch.setattr(parent, "handlers", [])  # pytest's capture handler sits on root
    assert direct_handlers(logger, CHANNEL_LEVELS[MODEL_LOGGER]) == [handler]


def test_a_handler_above_the_level_gets_nothing(
        tmp_path: Path, channel: Callable[[str], logging.Logger]) -> None:
    logger = channel(MODEL_LOGGER)
    quiet, loud = io.StringIO(), io.StringIO()
    logger.addHandler(AuditStreamHandler(quiet, level=logging.ERROR))
    logger.addHandler(AuditStreamHandler(loud))
    assert direct_handlers(logger, CHANNEL_LEVELS[MODEL_LOGGER]) == [logger.handlers[1]]
    events.emit(MODEL_LOGGER, "m", EVENTS[MODEL_LOGGER])
    assert quiet.getvalue() == ""
    assert json.loads(loud.getvalue())["message"] == "m"


def test_failure_is_reported_once_with_the_event_record_and_loses_nothing(
        tmp_path: Path, channel: Callable[[str], logging.Logger]) -> None:
    logger = channel(MODEL_LOGGER)
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log directory should be")
    failing = AuditFileHandler(blocker / "audit.log")
    healthy = AuditFileHandler(tmp_path / "ok.log")
    reported: list[tuple[logging.LogRecord, BaseException | None]] = []
    failing.handleError = (  # type: ignore[method-assign]
        lambda record: reported.append((record, sys.exc_info()[1])))
    logger.addHandler(failing)
    logger.addHandler(healthy)
    assert direct_handlers(logger, CHANNEL_LEVELS[MODEL_LOGGER]) == [failing, healthy]

    events.emit(MODEL_LOGGER, "first", EVENTS[MODEL_LOGGER])
    events.emit_many(MODEL_LOGGER, [(f"burst {i}", EVENTS[MODEL_LOGGER]) for i in range(3)])
    assert len(reported) == 1
    record, error = reported[0]
    assert isinstance(error, OSError)
    assert record.getMessage() == "first"
    assert record.__dict__["instance_id"] == "7"
    assert record.levelname == "AUDIT"

    blocker.unlink()
    events.emit(MODEL_LOGGER, "after", EVENTS[MODEL_LOGGER])
    expected = ["first", "burst 0", "burst 1", "burst 2", "after"]
    assert [line["message"] for line in lines_of(blocker / "audit.log")] == expected
    assert [line["message"] for line in lines_of(tmp_path / "ok.log")] == expected
    assert len(reported) == 1


# -- behind the queue (get_async_* handlers) ------------------------------------------------


def _queued(target: logging.Handler) -> AuditQueueHandler:
    return make_async(target)


@pytest.mark.parametrize("name", list(EVENTS))
def test_queue_takes_the_line_the_formatter_makes(
        tmp_path: Path, channel: Callable[[str], logging.Logger], name: str) -> None:
    logger = channel(name)
    direct, recorded = tmp_path / "direct.log", tmp_path / "recorded.log"
    queued = _queued(AuditFileHandler(direct))
    logger.addHandler(queued)
    assert direct_handlers(logger, CHANNEL_LEVELS[name]) == [queued]
    events.emit(name, "the message", EVENTS[name])
    events.emit_many(name, [("one", EVENTS[name]), ("two", EVENTS[name])])
    queued.close()
    logger.handlers = [_queued(Recorder(recorded))]
    assert direct_handlers(logger, CHANNEL_LEVELS[name]) is None
    events.emit(name, "the message", EVENTS[name])
    events.emit_many(name, [("one", EVENTS[name]), ("two", EVENTS[name])])
    logger.handlers[0].close()

    one, other = lines_of(direct), lines_of(recorded)
    assert [line["message"] for line in one] == ["the message", "one", "two"]
    for line in (*one, *other):
        assert line.pop("timestamp")
    assert [list(line) for line in one] == [list(line) for line in other]
    assert one == other


def _queue_filter(queued: AuditQueueHandler, target: AuditFileHandler, seen: Counted) -> None:
    queued.addFilter(seen)


def _target_filter(queued: AuditQueueHandler, target: AuditFileHandler, seen: Counted) -> None:
    target.addFilter(seen)


def _queue_formatter(queued: AuditQueueHandler, target: AuditFileHandler,
                     seen: Counted) -> None:
    class Seeing(AuditFormatter):
        def format_event(self, record: logging.LogRecord) -> dict[str, Any]:
            seen.filter(record)
            return super().format_event(record)

    queued.setFormatter(Seeing())


def _another_target(queued: AuditQueueHandler, target: AuditFileHandler, seen: Counted) -> None:
    other = logging.StreamHandler(io.StringIO())
    other.addFilter(seen)
    assert queued.listener is not None
    queued.listener.handlers = (*queued.listener.handlers, other)


@pytest.mark.parametrize("change", [_queue_filter, _target_filter, _queue_formatter,
                                    _another_target])
def test_anything_behind_the_queue_that_could_see_the_record_gets_it(
        tmp_path: Path, channel: Callable[[str], logging.Logger],
        change: Callable[[AuditQueueHandler, AuditFileHandler, Counted], None]) -> None:
    logger = channel(MODEL_LOGGER)
    target = AuditFileHandler(tmp_path / "audit.log")
    queued = _queued(target)
    logger.addHandler(queued)
    seen = Counted()
    change(queued, target, seen)
    assert direct_handlers(logger, CHANNEL_LEVELS[MODEL_LOGGER]) is None
    events.emit(MODEL_LOGGER, "seen", EVENTS[MODEL_LOGGER])
    events.emit_many(MODEL_LOGGER, [("seen too", EVENTS[MODEL_LOGGER])])
    queued.close()
    # Behind the queue a record's message is its line (as with the stdlib's QueueHandler).
    assert [json.loads(r.__dict__.get(LINE_ATTR) or "{}").get("message", r.getMessage())
            for r in seen.seen] == ["seen", "seen too"]
    assert all(r.__dict__["model"] == "Patient" for r in seen.seen)


def test_queued_lines_respect_the_writers_levels(
        tmp_path: Path, channel: Callable[[str], logging.Logger]) -> None:
    logger = channel(MODEL_LOGGER)
    quiet, loud = io.StringIO(), io.StringIO()
    queued = make_async(AuditStreamHandler(quiet, level=logging.ERROR))
    listener = queued.listener
    assert listener is not None
    listener.handlers = (*listener.handlers, AuditStreamHandler(loud))
    logger.addHandler(queued)
    assert direct_handlers(logger, CHANNEL_LEVELS[MODEL_LOGGER]) == [queued]
    events.emit(MODEL_LOGGER, "m", EVENTS[MODEL_LOGGER])
    queued.close()
    assert quiet.getvalue() == ""
    assert json.loads(loud.getvalue())["message"] == "m"


def test_queued_failure_is_reported_once_with_the_event_record_and_loses_nothing(
        tmp_path: Path, channel: Callable[[str], logging.Logger]) -> None:
    logger = channel(MODEL_LOGGER)
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log directory should be")
    failing = AuditFileHandler(blocker / "audit.log")
    reported: list[tuple[logging.LogRecord, BaseException | None]] = []
    failing.handleError = (  # type: ignore[method-assign]
        lambda record: reported.append((record, sys.exc_info()[1])))
    queued = _queued(failing)
    logger.addHandler(queued)
    assert direct_handlers(logger, CHANNEL_LEVELS[MODEL_LOGGER]) == [queued]

    events.emit(MODEL_LOGGER, "first", EVENTS[MODEL_LOGGER])
    queued.flush()
    events.emit_many(MODEL_LOGGER, [(f"burst {i}", EVENTS[MODEL_LOGGER]) for i in range(3)])
    queued.flush()
    assert len(reported) == 1
    record, error = reported[0]
    assert isinstance(error, OSError)
    assert record.getMessage() == "first"
    assert record.__dict__["instance_id"] == "7"
    assert record.levelname == "AUDIT"

    blocker.unlink()
    events.emit(MODEL_LOGGER, "after", EVENTS[MODEL_LOGGER])
    queued.close()
    expected = ["first", "burst 0", "burst 1", "burst 2", "after"]
    assert [line["message"] for line in lines_of(blocker / "audit.log")] == expected
    assert len(reported) == 1


def test_lines_for_a_stopped_writer_are_written_by_the_caller(
        tmp_path: Path, channel: Callable[[str], logging.Logger]) -> None:
    logger = channel(MODEL_LOGGER)
    path = tmp_path / "audit.log"
    queued = _queued(AuditFileHandler(path))
    logger.addHandler(queued)
    assert queued.listener is not None
    queued.listener.stop()  # as at interpreter exit, before logging.shutdown()
    events.emit(MODEL_LOGGER, "late", EVENTS[MODEL_LOGGER])
    events.emit_many(MODEL_LOGGER, [("later", EVENTS[MODEL_LOGGER])])
    assert [line["message"] for line in lines_of(path)] == ["late", "later"]
    queued.close()


def test_a_stdlib_listener_behind_the_queue_gets_records(
        tmp_path: Path, channel: Callable[[str], logging.Logger]) -> None:
    # As dictConfig on 3.12+ builds it when "listener" is not ours.
    logger = channel(MODEL_LOGGER)
    path = tmp_path / "audit.log"
    target = AuditFileHandler(path)
    queued = AuditQueueHandler(queue.Queue())
    listener = logging.handlers.QueueListener(queued.queue, target)
    queued.listener = listener
    listener.start()
    logger.addHandler(queued)
    assert direct_handlers(logger, CHANNEL_LEVELS[MODEL_LOGGER]) is None
    events.emit(MODEL_LOGGER, "one", EVENTS[MODEL_LOGGER])
    events.emit_many(MODEL_LOGGER, [("two", EVENTS[MODEL_LOGGER])])
    listener.stop()
    queued.close()  # after its listener stopped: nothing fails
    assert [line["message"] for line in lines_of(path)] == ["one", "two"]


def test_queued_drops_are_counted_in_events(
        channel: Callable[[str], logging.Logger]) -> None:
    from tests.core.test_handlers import GatedStream

    logger = channel(MODEL_LOGGER)
    stream = GatedStream()
    queued = make_async(AuditStreamHandler(stream), queue_size=1, full_policy="drop")
    logger.addHandler(queued)
    assert direct_handlers(logger, CHANNEL_LEVELS[MODEL_LOGGER]) == [queued]
    batch = [(f"m{i}", EVENTS[MODEL_LOGGER]) for i in range(5)]
    for _ in range(6):  # the writer holds one batch at the gate, the queue one more
        events.emit_many(MODEL_LOGGER, batch)
    assert queued.dropped >= 5
    assert queued.dropped % 5 == 0  # whole transactions, each event counted
    stream.gate.set()
    events.emit(MODEL_LOGGER, "after", EVENTS[MODEL_LOGGER])
    queued.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert sum(line.get("dropped", 0) for line in lines) == queued.dropped
    written = [line for line in lines if line.get("model") == "Patient"]
    assert len(written) + queued.dropped == 31
    queued.close()
