"""Attribution under load: real servers, real clients, real log files.

A subprocess serves the test project -- through Django's ``ThreadedWSGIServer``
or through uvicorn (ASGI) -- with real file handlers. 32 concurrent clients,
each authenticated as a different user (session cookie or DRF token), send
hundreds of requests each. Every request event and every model event created
inside those requests must carry the right user and request id.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection

pytestmark = [pytest.mark.slow]

CLIENTS = 32
#: Requests per client; ASGI serves sync views on one thread, so it gets fewer.
REQUESTS_PER_CLIENT = {"wsgi": 200, "asgi": 100}
ROOT = Path(__file__).resolve().parents[2]

SETTINGS = """
from tests.settings import *  # noqa: F403
from activity_audit import get_api_file_handler, get_audit_handler, get_login_handler

DATABASES = {{"default": {database}}}
LOGGING = {{
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {{
        "api": get_api_file_handler(log_dir={log_dir!r}),
        "audit": get_audit_handler(log_dir={log_dir!r}),
        "login": get_login_handler(log_dir={log_dir!r}),
    }},
    "loggers": {{
        "audit.request": {{"handlers": ["api"], "level": "API", "propagate": False}},
        "audit.model": {{"handlers": ["audit"], "level": "AUDIT", "propagate": False}},
        "audit.login": {{"handlers": ["login"], "level": "LOGIN", "propagate": False}},
    }},
}}
"""

SERVER = textwrap.dedent("""
    import json, signal, socket, sys, threading
    import django
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    mode, clients, creds_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        call_command("migrate", verbosity=0)
    creds = []
    for k in range(clients):
        user = get_user_model().objects.create_user(f"{mode}-user-{k}", password="x")
        if k % 2:
            creds.append({"user_id": str(user.pk), "token": Token.objects.create(user=user).key})
        else:
            client = Client()
            client.force_login(user)
            creds.append({"user_id": str(user.pk),
                          "session": client.cookies[settings.SESSION_COOKIE_NAME].value})
    with open(creds_path, "w") as f:
        json.dump(creds, f)

    if mode == "wsgi":
        from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
        from django.core.wsgi import get_wsgi_application

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        class Server(ThreadedWSGIServer):
            # Django's listen backlog is 10: 32 clients connecting at once can
            # overflow it and the kernel resets a connection (seen in CI).
            request_queue_size = 128

        server = Server(("127.0.0.1", 0), Quiet)
        server.set_app(get_wsgi_application())
        signal.signal(signal.SIGTERM,
                      lambda *a: threading.Thread(target=server.shutdown).start())
        print(server.server_address[1], flush=True)
        server.serve_forever()
        server.server_close()
    else:
        import uvicorn
        from django.core.asgi import get_asgi_application

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)  # clients may connect before uvicorn starts accepting
        print(sock.getsockname()[1], flush=True)
        config = uvicorn.Config(get_asgi_application(), log_level="warning", lifespan="off",
                                access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
""")


def _database() -> dict[str, Any]:
    """The server's database: the test database itself, or a fresh SQLite file."""
    current = connection.settings_dict
    if current["ENGINE"].endswith("sqlite3"):
        return {"ENGINE": current["ENGINE"], "NAME": "{tmp}/db.sqlite3",
                "OPTIONS": {"timeout": 60, "init_command": "PRAGMA journal_mode=WAL;"}}
    keys = ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")
    return {key: current[key] for key in keys if key in current}


@pytest.fixture
def served(request: Any, tmp_path: Path, transactional_db: None) -> Iterator[dict[str, Any]]:
    mode = request.param
    log_dir = tmp_path / "logs"
    database = json.loads(json.dumps(_database()).replace("{tmp}", str(tmp_path)))
    (tmp_path / "conc_settings.py").write_text(
        SETTINGS.format(database=repr(database), log_dir=str(log_dir)))
    creds_path = tmp_path / "creds.json"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "conc_settings",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), str(ROOT / "src")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, mode, str(CLIENTS), str(creds_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(tmp_path), text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip():
            raise RuntimeError(f"server did not start: {proc.communicate(timeout=30)[1]}")
        info = {"mode": mode, "url": f"http://127.0.0.1:{int(line)}", "proc": proc,
                "creds": json.loads(creds_path.read_text()), "log_dir": log_dir}
        yield info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def _stop(proc: subprocess.Popen[str]) -> str:
    """Stop the server gracefully, so handlers flush, and return its stderr."""
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    return stderr


def _read(log_dir: Path, name: str) -> list[dict[str, Any]]:
    events = []
    for path in sorted(glob.glob(str(log_dir / f"{name}*"))):
        with open(path, encoding="utf-8") as f:
            events.extend(json.loads(line) for line in f if line.strip())
    return events


def _run_client(base: str, mode: str, k: int, cred: dict[str, Any]) -> list[dict[str, Any]]:
    """One client's requests; returns what each request expects to find in the logs."""
    session = requests.Session()
    if "token" in cred:
        session.headers["Authorization"] = f"Token {cred['token']}"
        routes = [("POST", "/api/patients/", True), ("GET", "/api/whoami/", False),
                  ("GET", "/api/patients/", False)]
    else:
        session.cookies.set("sessionid", cred["session"])
        routes = [("POST", "/plain/patients/create/", True), ("GET", "/plain/whoami/", False),
                  ("GET", "/plain/ping/", False),
                  ("POST", "/plain/patients/create-as-user/", True)]
        if mode == "asgi":
            routes += [("POST", "/async/patients/create/", True),
                       ("GET", "/async/whoami/", False)]
    sent = []
    for i in range(REQUESTS_PER_CLIENT[mode]):
        method, path, creates = routes[i % len(routes)]
        name = f"{mode}-c{k}-r{i}"
        headers = {"X-Request-ID": name} if i % 2 == 0 else {}
        response = session.request(method, base + path, headers=headers,
                                   json={"name": name} if method == "POST" else None,
                                   timeout=60)
        assert response.status_code in (200, 201), (path, response.status_code, response.text)
        request_id = response.headers["X-Request-ID"]
        if i % 2 == 0:
            assert request_id == name
        if path.endswith("whoami/"):
            assert response.json()["user_id"] == cred["user_id"]
        sent.append({"request_id": request_id, "user_id": cred["user_id"], "path": path,
                     "name": name if creates else None})
    return sent


@pytest.mark.parametrize("served", ["wsgi", "asgi"], indirect=True)
def test_no_misattribution_under_concurrency(served: dict[str, Any]) -> None:
    creds = served["creds"]
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(_run_client, served["url"], served["mode"], k, creds[k])
                   for k in range(CLIENTS)]
        sent = [item for future in futures for item in future.result()]
    stderr = _stop(served["proc"])
    assert "Traceback" not in stderr, stderr

    assert len(sent) == CLIENTS * REQUESTS_PER_CLIENT[served["mode"]]
    expected = {item["request_id"]: item for item in sent}
    assert len(expected) == len(sent), "request ids must be unique"

    request_events = _read(served["log_dir"], "api.log")
    assert len(request_events) == len(sent)
    seen = set()
    for event in request_events:
        item = expected[event["request_id"]]
        assert event["user_id"] == item["user_id"], (event, item)
        assert event["request_repr"]["path"] == item["path"]
        seen.add(event["request_id"])
    assert seen == set(expected)

    by_name = {item["name"]: item for item in sent if item["name"]}
    creates = [e for e in _read(served["log_dir"], "audit.log")
               if e["event_type"] == "CREATE" and e["model"] in ("Patient", "Note")]
    attributed = [e for e in creates if e["request_id"] is not None]
    # Setup-time creates happen outside requests; every create inside one is attributed.
    named = {}
    for event in attributed:
        name = event["instance_repr"].get("name") or event["instance_repr"].get("text")
        item = by_name[name]
        assert event["request_id"] == item["request_id"], (event, item)
        assert event["user_id"] == item["user_id"], (event, item)
        named.setdefault(name, set()).add(event["model"])
    assert set(named) == set(by_name)
    assert all("Patient" in models for models in named.values())
