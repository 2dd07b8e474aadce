"""The published setup, verbatim, in a real Django process: lines land in the files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SETTINGS = textwrap.dedent('''
    SECRET_KEY = "contract"
    DEBUG = False
    ALLOWED_HOSTS = ["*"]
    USE_TZ = True
    ROOT_URLCONF = "contract_urls"
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
    INSTALLED_APPS = [
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "activity_audit",
    ]
    MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "activity_audit.middleware.AuditLoggingMiddleware",
    ]
    AUDIT_SERVICE_NAME = "contract-service"

    from activity_audit import *
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": get_json_formatter(), "verbose": get_console_formatter()},
        "handlers": {
            "console": {"level": "DEBUG", "class": "logging.StreamHandler", "formatter": "verbose"},
            "file": get_json_handler(level="DEBUG", formatter="json"),
            "api_file": get_api_file_handler(),
            "audit_file": get_audit_handler(),
        },
        "root": {"level": "DEBUG", "handlers": ["console", "file"]},
        "loggers": {
            "audit.request": {"handlers": ["api_file"], "level": "API", "propagate": False},
            "audit.model": {"handlers": ["audit_file"], "level": "AUDIT", "propagate": False},
            "django": {"handlers": ["console", "file"], "level": "INFO", "propagate": False},
        },
    }
''')

URLS = textwrap.dedent('''
    from django.http import JsonResponse
    from django.urls import path

    def patients(request):
        return JsonResponse({"ok": True})

    urlpatterns = [path("api/patients/", patients)]
''')

SCRIPT = textwrap.dedent('''
    import logging, sys
    import django
    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from activity_audit.events import emit

    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import Group
    Group.objects.create(name="nurses")
    emit("audit.model", "CREATE event for Patient (id: 1)",
         {"model": "Patient", "event_type": "CREATE", "instance_id": "1"})
    response = Client().get("/api/patients/?q=1")
    assert response.status_code == 200, response.status_code
    logging.getLogger("app").info("application line")
    print("served")
''')


def run(tmp_path: Path, env: dict[str, str] | None = None,
        extra_settings: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "contract_settings.py").write_text(SETTINGS + "\n" + extra_settings + "\n")
    (tmp_path / "contract_urls.py").write_text(URLS)
    (tmp_path / "run.py").write_text(SCRIPT)
    full_env = {k: v for k, v in os.environ.items() if k != "AUDIT_LOG_DIR"}
    full_env.update({"DJANGO_SETTINGS_MODULE": "contract_settings", "PYTHONPATH": str(tmp_path),
                     **(env or {})})
    return subprocess.run([sys.executable, "run.py"], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=300, check=False)


def read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_published_setup_writes_every_file(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "served" in result.stdout
    logs = tmp_path / "logs"  # created: it did not exist
    audit = read(logs / "audit.log")
    assert {"model": "Patient", "event_type": "CREATE"}.items() <= audit[-1].items()
    assert any(r.get("model") == "Group" and r.get("event_type") == "CREATE" for r in audit)
    api = read(logs / "api.log")
    assert api[-1]["message"] == "Audit Internal Request"
    assert api[-1]["level"] == "API"
    assert api[-1]["service_name"] == "contract-service"
    assert api[-1]["request_repr"]["path"] == "/api/patients/"  # type: ignore[index]
    app = read(logs / "app.log")
    assert any(r["message"] == "application line" for r in app)
    # Audit channels do not propagate: no audit line in the application log.
    assert not any(str(r["name"]).startswith("audit.") for r in app if r["name"] != "audit.login")


@pytest.mark.slow
def test_uncreatable_log_directory_never_stops_the_app(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file where the log directory should be")
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "served" in result.stdout
    # Reported through Handler.handleError, once per handler and burst.
    assert "Logging error" in result.stderr


@pytest.mark.slow
def test_integrity_key_setting_seals_the_audit_files(tmp_path: Path) -> None:
    result = run(tmp_path, extra_settings='AUDIT_INTEGRITY_KEY = "contract-key"')
    assert result.returncode == 0, result.stderr
    logs = tmp_path / "logs"
    verify = subprocess.run(
        [sys.executable, "-m", "activity_audit", "verify", "--closed", "--json",
         str(logs / "audit.log"), str(logs / "api.log")],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "AUDIT_INTEGRITY_KEY": "contract-key"},
    )
    report = json.loads(verify.stdout)
    assert report["breaks"] == []
    assert report["chains"] == 2
    assert verify.returncode == 0
    # The management command reads the key from settings.
    command = subprocess.run(
        [sys.executable, "-c", "import django, sys; django.setup(); "
         "from django.core.management import call_command; "
         f"call_command('audit_verify', '--closed', {str(logs / 'audit.log')!r})"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "contract_settings",
             "PYTHONPATH": str(tmp_path)},
    )
    assert command.returncode == 0, command.stderr
    assert command.stdout.startswith("OK:")
