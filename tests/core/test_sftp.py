"""SFTPClient (paramiko) against an in-process asyncssh SFTP server on 127.0.0.1.

The server runs in a thread with its own event loop, chrooted to a temporary
directory, accepting one password and one public key.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import paramiko
import pytest

from activity_audit.context import bind
from activity_audit.protocols import OutboundSettings, SFTPClient
from activity_audit.schema import BASE_KEYS, REQUEST_KEYS, REQUEST_LOGGER
from activity_audit.testing import capture_events

USER = "uploader"
PASSWORD = "correct horse"


class _PasswordOrKeyServer(asyncssh.SSHServer):
    def __init__(self, connections: set[asyncssh.SSHServerConnection]) -> None:
        self.connections = connections

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.connections.add(conn)

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD


class SFTPServer:
    """An asyncssh SFTP server in a background thread."""

    def __init__(self, root: Path, host_key: asyncssh.SSHKey, client_key: asyncssh.SSHKey) -> None:
        self.root = root
        self.host_key = host_key
        self.client_key = client_key
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.acceptor: Any = None
        self.port = 0
        self.connections: set[asyncssh.SSHServerConnection] = set()

    async def _listen(self) -> Any:
        authorized = asyncssh.import_authorized_keys(
            self.client_key.export_public_key().decode("ascii")
        )
        root = str(self.root).encode()
        return await asyncssh.listen(
            "127.0.0.1", 0,
            server_host_keys=[self.host_key],
            authorized_client_keys=authorized,
            server_factory=lambda: _PasswordOrKeyServer(self.connections),
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root),
            allow_scp=False,
        )

    def start(self) -> None:
        self.thread.start()
        self.acceptor = asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(30)
        self.port = self.acceptor.get_port()

    def stop(self) -> None:
        async def close() -> None:
            self.acceptor.close()
            await self.acceptor.wait_closed()
            # Connections a client dropped mid-handshake may still be open.
            for conn in list(self.connections):
                conn.close()
                await conn.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("keys")
    host = asyncssh.generate_private_key("ssh-ed25519")
    client = asyncssh.generate_private_key("ssh-ed25519")
    client_file = folder / "id_ed25519"
    client.write_private_key(str(client_file))
    return {
        "host": host,
        "host_line": host.export_public_key().decode("ascii").strip(),
        "other_host_line": asyncssh.generate_private_key("ssh-ed25519")
        .export_public_key().decode("ascii").strip(),
        "client": client,
        "client_file": client_file,
    }


@pytest.fixture(scope="module")
def sftp_server(
    tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Any]
) -> Iterator[SFTPServer]:
    root = tmp_path_factory.mktemp("sftp-root")
    server = SFTPServer(root, keys["host"], keys["client"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def folder(sftp_server: SFTPServer, request: pytest.FixtureRequest) -> str:
    """A fresh folder on the server for this test (as seen by the client)."""
    name = request.node.name.replace("[", "_").replace("]", "_")
    (sftp_server.root / name).mkdir()
    return f"/{name}"


def client(server: SFTPServer, keys: dict[str, Any], **kwargs: Any) -> SFTPClient:
    kwargs.setdefault("host_key", keys["host_line"])
    kwargs.setdefault("timeout", 10)
    password = kwargs.pop("password", PASSWORD)
    return SFTPClient("127.0.0.1", server.port, USER, password, "partner-sftp", **kwargs)


def test_upload_download_list_with_password(
    sftp_server: SFTPServer, keys: dict[str, Any], folder: str
) -> None:
    content = b"id,name\n1,Ada\n"
    with capture_events(REQUEST_LOGGER) as events, bind(request_id="rid-s", actor="cron"):
        sftp = client(sftp_server, keys)
        channel, error = sftp.connect()
        assert error is None
        assert channel is sftp.channel
        message = sftp.upload(folder, "report.csv", content)
        assert sftp.download(folder, "report.csv") == content
        assert sftp.listdir(folder) == ["report.csv"]
        sftp.close()
    assert message == f"report.csv uploaded successfully to {folder}"
    assert (sftp_server.root / folder.lstrip("/") / "report.csv").read_bytes() == content
    connect, upload, download, listing = events
    for event in events:
        assert set(event) == {*BASE_KEYS, *REQUEST_KEYS}
        assert event["protocol"] == "sftp"
        assert event["request_type"] == "external"
        assert event["service_name"] == "partner-sftp"
        assert event["request_id"] == "rid-s"
        assert event["user_id"] == "cron"
        assert event["error_message"] is None
        assert event["response_repr"]["success"] is True
        assert event["execution_time"] > 0
        assert event["request_repr"]["host"] == "127.0.0.1"
        assert event["request_repr"]["port"] == sftp_server.port
        assert event["request_repr"]["username"] == USER
    assert connect["request_repr"]["operation"] == "connect"
    assert upload["request_repr"] | {} == {
        "host": "127.0.0.1", "port": sftp_server.port, "username": USER,
        "operation": "upload", "remote_path": folder, "filename": "report.csv",
    }
    assert upload["response_repr"] == {"success": True, "bytes": len(content)}
    assert download["request_repr"]["operation"] == "download"
    assert download["response_repr"] == {"success": True, "bytes": len(content)}
    assert listing["request_repr"]["operation"] == "listdir"
    assert listing["response_repr"] == {"success": True, "entries": 1}
    assert PASSWORD not in repr(events)


def test_key_auth_as_context_manager(
    sftp_server: SFTPServer, keys: dict[str, Any], folder: str
) -> None:
    with SFTPClient("127.0.0.1", sftp_server.port, USER, None, "k",
                    key_filename=keys["client_file"], host_key=keys["host_line"],
                    timeout=10) as sftp:
        sftp.upload(folder, "a.txt", "text is UTF-8: é")
        assert sftp.download(folder, "a.txt") == "text is UTF-8: é".encode()
    assert sftp.channel is None
    pkey = paramiko.Ed25519Key.from_private_key_file(str(keys["client_file"]))
    with SFTPClient("127.0.0.1", sftp_server.port, USER, service_name="k", pkey=pkey,
                    host_key=keys["host_line"], timeout=10) as sftp:
        assert sftp.listdir(folder) == ["a.txt"]


def test_upload_from_file_object_connects_lazily(
    sftp_server: SFTPServer, keys: dict[str, Any], folder: str, tmp_path: Path
) -> None:
    local = tmp_path / "big.bin"
    local.write_bytes(b"\x01" * 100_000)
    sftp = client(sftp_server, keys)
    try:
        with capture_events(REQUEST_LOGGER) as events, local.open("rb") as fh:
            sftp.upload(folder, "big.bin", fh)
    finally:
        sftp.close()
    assert [e["request_repr"]["operation"] for e in events] == ["connect", "upload"]
    assert events[1]["response_repr"] == {"success": True, "bytes": 100_000}


def test_wrong_password_logged_and_reraised(sftp_server: SFTPServer, keys: dict[str, Any]) -> None:
    sftp = client(sftp_server, keys, password="wrong-secret")
    with capture_events(REQUEST_LOGGER) as events, pytest.raises(paramiko.AuthenticationException):
        sftp.connect()
    [event] = events
    assert event["request_repr"]["operation"] == "connect"
    assert event["response_repr"] == {"success": False}
    assert event["error_message"].startswith("paramiko.ssh_exception.AuthenticationException")
    assert "wrong-secret" not in repr(event)
    assert sftp.channel is None


def test_missing_folder_logged_and_reraised(
    sftp_server: SFTPServer, keys: dict[str, Any]
) -> None:
    with client(sftp_server, keys) as sftp:
        with capture_events(REQUEST_LOGGER) as events, pytest.raises(FileNotFoundError):
            sftp.upload("/no/such/folder", "x.txt", b"data")
        with capture_events(REQUEST_LOGGER) as more, pytest.raises(FileNotFoundError):
            sftp.download("/no/such/folder", "x.txt")
    [event] = events
    assert event["request_repr"]["operation"] == "upload"
    assert event["request_repr"]["remote_path"] == "/no/such/folder"
    assert event["response_repr"] == {"success": False}
    assert event["error_message"].startswith("FileNotFoundError: ")
    assert more[0]["response_repr"] == {"success": False}


def test_pinned_host_key_rejects_a_different_key(
    sftp_server: SFTPServer, keys: dict[str, Any]
) -> None:
    sftp = client(sftp_server, keys, host_key=keys["other_host_line"])
    with capture_events(REQUEST_LOGGER) as events, pytest.raises(paramiko.BadHostKeyException):
        sftp.connect()
    assert events[0]["error_message"].startswith("paramiko.ssh_exception.BadHostKeyException")


def test_unknown_host_rejected_unless_opted_in(
    sftp_server: SFTPServer, keys: dict[str, Any], tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        client(sftp_server, keys, host_key=None, known_hosts=empty).connect()
    with client(sftp_server, keys, host_key=None, known_hosts=empty,
                auto_add_host_key=True) as sftp:
        assert sftp.channel is not None
    # The read-only known_hosts file was not written to.
    assert empty.read_text() == ""


def test_known_hosts_file_accepts_the_right_key(
    sftp_server: SFTPServer, keys: dict[str, Any], tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sftp_server.port} {keys['host_line']}\n")
    with client(sftp_server, keys, host_key=None, known_hosts=known) as sftp:
        assert isinstance(sftp.listdir("/"), list)
    wrong = tmp_path / "wrong_hosts"
    wrong.write_text(f"[127.0.0.1]:{sftp_server.port} {keys['other_host_line']}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        client(sftp_server, keys, host_key=None, known_hosts=wrong).connect()


def test_disabled_emits_nothing(sftp_server: SFTPServer, keys: dict[str, Any]) -> None:
    with (
        capture_events(REQUEST_LOGGER) as events,
        client(sftp_server, keys, settings=OutboundSettings(enabled=False)) as sftp,
    ):
        sftp.listdir("/")
    assert events == []


def test_missing_paramiko_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "paramiko", None)
    with pytest.raises(ImportError, match=r"django-activity-audit\[sftp\]"):
        SFTPClient("127.0.0.1", 22, "u", "p", "svc")


def test_is_valid_path_keeps_the_earlier_shape(
    sftp_server: SFTPServer, keys: dict[str, Any], folder: str
) -> None:
    sftp = client(sftp_server, keys)
    assert sftp.is_valid_path(folder) == (False, "Connection not established")
    with sftp, capture_events(REQUEST_LOGGER) as events:
        sftp.upload(folder, "f.txt", b"x")
        assert sftp.is_valid_path(folder) == (True, None)
        ok, reason = sftp.is_valid_path("/missing")
        assert ok is False
        assert reason is not None
        assert reason.startswith("Folder(/missing) not found")
        assert sftp.is_valid_path(f"{folder}/f.txt") == (False, f"{folder}/f.txt is not a folder.")
    stats = [e for e in events if e["request_repr"]["operation"] == "stat"]
    assert [e["response_repr"]["success"] for e in stats] == [True, False, True]
    assert stats[1]["error_message"].startswith("FileNotFoundError")
