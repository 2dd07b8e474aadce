from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from activity_audit.formatters import AuditFormatter
from activity_audit.levels import API
from activity_audit.schema import REQUEST_LOGGER


@pytest.fixture
def api_log(tmp_path: Path) -> Iterator[Path]:
    """A real file handler with the audit formatter on ``audit.request``."""
    path = tmp_path / "api.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(API)
    handler.setFormatter(AuditFormatter())
    logger = logging.getLogger(REQUEST_LOGGER)
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture(scope="session")
def running_server() -> Iterator[HTTPServer]:
    """A real threaded HTTP server on 127.0.0.1 for the outbound clients' tests."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def server(running_server: HTTPServer) -> Iterator[HTTPServer]:
    yield running_server
    running_server.clear()


@pytest.fixture(scope="session", autouse=True)
def _close_connections_of_async_tests(
    django_db_setup: None, django_db_blocker: Any
) -> Iterator[None]:
    """Close the DB connections that async tests opened in asgiref's worker thread.

    ORM calls from async views run in asgiref's single thread-sensitive executor;
    its connection outlives the test, and PostgreSQL refuses to drop a test
    database that still has a session. Set up after the test database, so this
    runs before it is destroyed.
    """
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    with django_db_blocker.unblock():
        asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)())
