"""The example project in one run: every kind of audit line, printed.

    python dev.py demo

Creates a scratch SQLite database and log directory, performs model writes,
reads, bulk writes, m2m changes, logins and HTTP requests (one of which calls a
local "lab" service), then prints the JSON lines the published LOGGING setup
wrote to logs/audit.log, logs/api.log and logs/login.log.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class LabHandler(BaseHTTPRequestHandler):
    """A tiny downstream service standing in for a lab API on 127.0.0.1."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"status": "queued", "request_id": self.headers.get("X-Request-ID")})
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


def run_scenario() -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction
    from django.test import Client

    import django

    django.setup()
    call_command("migrate", verbosity=0)

    from activity_audit import audit_context
    from example.clinic.models import Appointment, Clinic, Condition, Patient

    user_model = get_user_model()
    admin = user_model.objects.create_user(
        "dr.grey", "grey@example.org", "s3cret-pass", first_name="Meredith", last_name="Grey"
    )

    # A management-command style job: attribute its writes with audit_context.
    with audit_context(actor=admin, reason="intake batch"):
        clinic = Clinic.objects.create(name="Seattle Grace")
        ada = Patient.objects.create(name="Ada", email="ada@example.org", ssn="123-45-6789",
                                     balance=Decimal("12.50"), clinic=clinic)
        asthma, flu = Condition.objects.bulk_create(
            [Condition(code="J45"), Condition(code="J10")]
        )
        ada.conditions.add(asthma, flu)
        ada.conditions.remove(flu)
        ada.balance = Decimal("99.95")
        ada.email = "ada.lovelace@example.org"
        ada.save()
        with transaction.atomic():
            Appointment.objects.create(patient=ada, reason="check-up")
        Patient.objects.bulk_create([Patient(name=f"Walk-in {i}", clinic=clinic) for i in (1, 2)])
        walk_ins = list(Patient.objects.filter(name__startswith="Walk-in"))
        for p in walk_ins:
            p.is_active = False
        Patient.objects.bulk_update(walk_ins, ["is_active"])
        Patient.objects.filter(is_active=False).update(balance=Decimal("0"))
        try:
            with transaction.atomic():
                Patient.objects.create(name="Rolled back", clinic=clinic)
                raise RuntimeError("roll back: this CREATE never reaches the trail")
        except RuntimeError:
            pass
        Patient.objects.filter(name="Walk-in 2").delete()
        ada.conditions.clear()

    lab = ThreadingHTTPServer(("127.0.0.1", 0), LabHandler)
    threading.Thread(target=lab.serve_forever, daemon=True).start()
    lab_url = f"http://127.0.0.1:{lab.server_address[1]}/orders"
    try:
        client = Client()
        client.login(username="dr.grey", password="wrong-password")
        client.login(username="dr.grey", password="s3cret-pass")
        client.get("/patients/?search=ada&token=abc123")  # READ + request, token redacted
        client.post(
            "/patients/",
            data={"name": "Bob", "ssn": "987-65-4321", "password": "hunter2"},
            content_type="application/json",
            headers={"X-Request-ID": "demo-req-0001", "X-Lab-Url": lab_url,
                     "Authorization": "Bearer not-in-the-log"},
        )
        client.logout()
    finally:
        lab.shutdown()
    logging.shutdown()


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="activity-audit-demo-"))
    os.environ["DEMO_DIR"] = str(scratch)
    os.environ["AUDIT_LOG_DIR"] = str(scratch / "logs")
    os.environ["DJANGO_SETTINGS_MODULE"] = "example.settings"
    sys.path.insert(0, str(ROOT))
    run_scenario()
    for name in ("audit.log", "api.log", "login.log"):
        path = scratch / "logs" / name
        print(f"\n===== {path} =====")
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            print(line)
        print(f"----- {len(lines)} lines")
    print(f"\nThe database and the log files are in {scratch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
