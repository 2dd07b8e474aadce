"""Request overhead of AuditLoggingMiddleware: the same project with and without it.

Run:  python benchmarks/bench_requests.py [--db sqlite|postgres|both] [--reps 9]

Both variants install ``activity_audit`` (model auditing on, the published
LOGGING setup writing real files); only the middleware differs. Requests go
through Django's WSGI handler (``django.test.Client``) with a real logged-in
session to DRF views (session authentication): a small JSON list, a JSON
create and a PATCH. Each worker also counts the queries per case; the run
fails if the middleware adds one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import (  # noqa: E402
    Payload,
    django_ab_main,
    per_op,
    repeated,
    run_django_worker,
)

REQUESTS = 300
ROUNDS = 3
MIDDLEWARE_PATH = "activity_audit.middleware.AuditLoggingMiddleware"


def worker() -> Payload:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.bench_settings")
    from django.conf import settings

    import django

    django.setup()
    if os.environ["BENCH_REQUESTS_VARIANT"] == "off":
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from tests.testapp.models import Patient

    call_command("migrate", verbosity=0, run_syncdb=True)
    Patient.objects.all().delete()
    get_user_model().objects.filter(username="bench").delete()
    user = get_user_model().objects.create_user("bench", password="x", email="b@example.org")
    for i in range(10):
        Patient.objects.create(name=f"Patient {i}", email=f"p{i}@example.org")
    target = Patient.objects.create(name="Target")
    client = Client()
    client.force_login(user)

    def list_patients() -> None:
        assert client.get("/api/patients/").status_code == 200

    counter = iter(range(10**9))

    def create_patient() -> None:
        response = client.post("/api/patients/", {"name": f"New {next(counter)}"},
                               content_type="application/json")
        assert response.status_code == 201

    def patch_patient() -> None:
        response = client.patch(f"/api/patients/{target.pk}/", {"notes": "n"},
                                content_type="application/json")
        assert response.status_code == 200

    cases: dict[str, Callable[[], None]] = {
        "GET list (JSON)": list_patients,
        "POST create (JSON)": create_patient,
        "PATCH (JSON)": patch_patient,
    }
    timings: dict[str, float] = {}
    queries: dict[str, int] = {}
    for name, fn in cases.items():
        for _ in range(20):  # warm-up
            fn()
        with CaptureQueriesContext(connection) as ctx:
            fn()
        queries[name] = len(ctx.captured_queries)
        timings[name] = per_op(repeated(fn, REQUESTS), ROUNDS)
    return {"timings": timings, "queries": queries}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        variant, db, scratch = sys.argv[2:5]
        # Both variants audit models; only the middleware differs.
        run_django_worker(worker, {"BENCH_VARIANT": "on", "BENCH_REQUESTS_VARIANT": variant,
                                   "BENCH_DB": db, "BENCH_DIR": scratch}, scratch, variant)
    else:
        sys.exit(django_ab_main(__file__, sys.argv[1:], title="Request auditing",
                                unit="seconds per request, middleware off vs on"))
