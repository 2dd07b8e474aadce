"""The LOGGING helpers: plain dicts that dictConfig accepts and that write where they say."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import activity_audit
from activity_audit import logconfig
from activity_audit.events import emit
from activity_audit.handlers import AuditFileHandler, AuditQueueHandler, AuditStreamHandler
from activity_audit.schema import LOGIN_LOGGER, MODEL_LOGGER, REQUEST_LOGGER

FILE_HELPERS: list[tuple[Callable[..., dict[str, Any]], str]] = [
    (logconfig.get_json_handler, "app.log"),
    (logconfig.get_api_file_handler, "api.log"),
    (logconfig.get_api_handler, "api.log"),
    (logconfig.get_audit_handler, "audit.log"),
    (logconfig.get_login_handler, "login.log"),
    (logconfig.get_async_json_handler, "app.log"),
    (logconfig.get_async_api_handler, "api.log"),
    (logconfig.get_async_audit_handler, "audit.log"),
    (logconfig.get_async_login_handler, "login.log"),
]


@pytest.fixture
def configure() -> Iterator[Callable[[dict[str, Any]], None]]:
    used: list[logging.Logger] = []

    def apply(config: dict[str, Any]) -> None:
        logging.config.dictConfig(config)
        used.extend(logging.getLogger(name) for name in config.get("loggers", {}))

    yield apply
    for logger in used:
        for handler in logger.handlers[:]:
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_star_import_exports_every_helper() -> None:
    namespace: dict[str, Any] = {}
    exec("from activity_audit import *", namespace)
    for name in ("get_json_formatter", "get_console_formatter", "get_json_handler",
                 "get_api_file_handler", "get_audit_handler", "get_login_handler",
                 "get_api_handler", "get_async_json_handler", "get_async_api_handler",
                 "get_async_audit_handler", "get_async_login_handler", "get_stdout_handler",
                 "get_async_stdout_handler", "AUDIT", "API", "LOGIN"):
        assert name in namespace, name
    assert set(activity_audit.__all__) <= set(namespace)


@pytest.mark.parametrize(("helper", "filename"), FILE_HELPERS)
def test_file_helper_through_dictconfig(tmp_path: Path, configure: Any,
                                        helper: Callable[..., dict[str, Any]],
                                        filename: str) -> None:
    config = helper(log_dir=tmp_path / "logs", level="DEBUG", formatter=None)
    assert config["filename"].endswith(filename)
    assert {"filename", "maxBytes", "backupCount"} <= set(config)
    configure({
        "version": 1, "disable_existing_loggers": False,
        "handlers": {"h": config},
        "loggers": {MODEL_LOGGER: {"handlers": ["h"], "level": "AUDIT", "propagate": False}},
    })
    handler = logging.getLogger(MODEL_LOGGER).handlers[0]
    async_ = "async" in helper.__name__
    assert isinstance(handler, AuditQueueHandler if async_ else AuditFileHandler)
    emit(MODEL_LOGGER, "CREATE event for Patient", {"event_type": "CREATE", "model": "Patient"})
    handler.flush()
    lines = (tmp_path / "logs" / filename).read_text().splitlines()
    record = json.loads(lines[0])
    assert record["event_type"] == "CREATE"
    assert record["level"] == "AUDIT"


def test_overrides_reach_the_handler(tmp_path: Path, configure: Any) -> None:
    configure({
        "version": 1, "disable_existing_loggers": False,
        "handlers": {"h": logconfig.get_async_audit_handler(
            filename=str(tmp_path / "x.log"), maxBytes=123, backupCount=4, queue_size=7)},
        "loggers": {MODEL_LOGGER: {"handlers": ["h"], "level": "AUDIT"}},
    })
    handler = logging.getLogger(MODEL_LOGGER).handlers[0]
    assert isinstance(handler, AuditQueueHandler)
    target = handler.listener.handlers[0]
    assert isinstance(target, AuditFileHandler)
    assert (target.baseFilename, target.maxBytes, target.backupCount) == (
        str(tmp_path / "x.log"), 123, 4)
    assert handler.queue.maxsize == 7  # type: ignore[attr-defined]


@pytest.mark.parametrize("helper", [logconfig.get_stdout_handler,
                                    logconfig.get_async_stdout_handler])
def test_stdout_helpers(capsys: pytest.CaptureFixture[str], configure: Any,
                        helper: Callable[..., dict[str, Any]]) -> None:
    configure({
        "version": 1, "disable_existing_loggers": False,
        "handlers": {"h": helper()},
        "loggers": {LOGIN_LOGGER: {"handlers": ["h"], "level": "LOGIN", "propagate": False}},
    })
    emit(LOGIN_LOGGER, "login", {"event_type": "LOGIN", "success": True})
    logging.getLogger(LOGIN_LOGGER).handlers[0].flush()
    record = json.loads(capsys.readouterr().out)
    assert record["event_type"] == "LOGIN"


def test_json_handler_with_named_formatter(tmp_path: Path, configure: Any) -> None:
    configure({
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": logconfig.get_json_formatter()},
        "handlers": {"h": logconfig.get_async_json_handler(log_dir=tmp_path)},
        "loggers": {"myapp": {"handlers": ["h"], "level": "DEBUG", "propagate": False}},
    })
    logging.getLogger("myapp").info("hello %s", "world", extra={"k": 1})
    logging.getLogger("myapp").handlers[0].flush()
    record = json.loads((tmp_path / "app.log").read_text())
    assert (record["message"], record["k"], record["function"]) == (
        "hello world", 1, "test_json_handler_with_named_formatter")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="dictConfig builds QueueHandlers on 3.12+")
def test_queue_handler_class_form_on_312(tmp_path: Path, configure: Any) -> None:
    configure({
        "version": 1, "disable_existing_loggers": False,
        "handlers": {
            "file": logconfig.get_audit_handler(log_dir=tmp_path),
            "q": {"class": "activity_audit.handlers.AuditQueueHandler", "handlers": ["file"],
                  "listener": "activity_audit.handlers.AuditQueueListener"},
        },
        "loggers": {REQUEST_LOGGER: {"handlers": ["q"], "level": "API", "propagate": False}},
    })
    handler = logging.getLogger(REQUEST_LOGGER).handlers[0]
    handler.listener.start()  # type: ignore[attr-defined]
    emit(REQUEST_LOGGER, "Audit Internal Request", {"request_type": "internal"})
    handler.close()
    record = json.loads((tmp_path / "audit.log").read_text())
    assert record["request_type"] == "internal"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="dictConfig builds QueueHandlers on 3.12+")
def test_drops_are_reported_when_dictconfig_builds_the_queue(configure: Any) -> None:
    from tests.core.test_handlers import GatedStream, assert_drops_reported, record

    stream = GatedStream()
    target = AuditStreamHandler(stream)
    configure({
        "version": 1, "disable_existing_loggers": False,
        "handlers": {
            "target": {"()": lambda: target},
            "q": {"class": "activity_audit.handlers.AuditQueueHandler", "handlers": ["target"],
                  "listener": "activity_audit.handlers.AuditQueueListener",
                  "queue": {"()": "queue.Queue", "maxsize": 2}},
        },
        "loggers": {MODEL_LOGGER: {"handlers": ["q"], "level": "AUDIT", "propagate": False}},
    })
    handler = logging.getLogger(MODEL_LOGGER).handlers[0]
    assert isinstance(handler, AuditQueueHandler)
    handler.full_policy = "drop"  # 3.13 takes "full_policy" in the config; 3.12 does not
    handler.listener.start()
    for i in range(20):
        handler.handle(record(i))
    assert handler.dropped > 0
    assert_drops_reported(handler, stream, total=21)
