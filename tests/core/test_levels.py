from __future__ import annotations

import logging

import pytest

import activity_audit
from activity_audit import levels


def test_level_names_registered() -> None:
    assert logging.getLevelName("AUDIT") == activity_audit.AUDIT == 21
    assert logging.getLevelName("API") == activity_audit.API == 22
    assert logging.getLevelName("LOGIN") == activity_audit.LOGIN == 23
    assert logging.getLevelName(21) == "AUDIT"


@pytest.mark.parametrize(("method", "level"), [("audit", 21), ("api", 22), ("login", 23)])
def test_logger_methods_log_at_their_level(method: str, level: int) -> None:
    logger = logging.getLogger(f"tests.levels.{method}")
    logger.setLevel(logging.DEBUG)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        getattr(logger, method)("hello %s", "world")
    finally:
        logger.removeHandler(handler)
    assert [(r.levelno, r.getMessage()) for r in records] == [(level, "hello world")]
    assert records[0].funcName == "test_logger_methods_log_at_their_level"


def test_existing_logger_method_is_not_replaced() -> None:
    assert levels.AUDIT == 21
    sentinel = logging.Logger.audit  # type: ignore[attr-defined]
    import importlib

    importlib.reload(levels)
    assert logging.Logger.audit is sentinel  # type: ignore[attr-defined]
