"""Request overhead of AuditLoggingMiddleware: the same project with and without it.

Run:  python benchmarks/bench_requests.py [--db sqlite|postgres|both] [--reps 5] [--rounds 7]
            [--variants off,on | none,on,v1,easyaudit,auditlog]

``off`` and ``on`` both install ``activity_audit`` (model auditing on, the
published LOGGING setup writing real files); only the middleware differs.
``none`` is the project without any audit package; against it, ``on`` is the
whole package's cost, and ``v1`` (this package's release 1.2.7),
``easyaudit`` and ``auditlog`` are the other packages' (see
``benchmarks/other_packages.py``; their query counts are reported, not
required to match). Requests go
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

from benchmarks import other_packages  # noqa: E402
from benchmarks.harness import (  # noqa: E402
    Case,
    django_ab_main,
    migrate_own_database,
    repeated,
    serve_django_worker,
)

REQUESTS = 300
WARMUP = 20
MIDDLEWARE_PATH = "activity_audit.middleware.AuditLoggingMiddleware"


def cases() -> dict[str, Case]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.bench_settings")
    from django.conf import settings

    import django

    django.setup()
    if os.environ["BENCH_REQUESTS_VARIANT"] == "off":
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]
    from django.contrib.auth import get_user_model
    from django.test import Client
    from tests.testapp.models import Patient

    migrate_own_database()
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

    def case(fn: Callable[[], None]) -> Case:
        return Case(repeated(fn, REQUESTS), warmup=repeated(fn, WARMUP))

    return {
        "GET list (JSON)": case(list_patients),
        "POST create (JSON)": case(create_patient),
        "PATCH (JSON)": case(patch_patient),
    }


#: Variants whose query counts may differ from the baseline's.
OTHERS = frozenset(other_packages.SPECS)


def worker_env(variant: str, db: str, scratch: str) -> dict[str, str]:
    """The environment of a worker of ``variant`` (``off``/``on``: only the middleware differs)."""
    if variant in ("off", "on"):
        settings_variant = "on"
    elif variant == "none":
        settings_variant = "off"
    elif variant in OTHERS:
        settings_variant = variant
    else:
        raise SystemExit(f"bench_requests: unknown variant {variant!r} "
                         f"(off, on, none, {', '.join(sorted(OTHERS))})")
    return {"BENCH_VARIANT": settings_variant, "BENCH_REQUESTS_VARIANT": variant,
            "BENCH_SLOT": variant, "BENCH_DB": db, "BENCH_DIR": scratch}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        other_packages.activate(sys.argv[2])
        serve_django_worker(cases, worker_env(*sys.argv[2:5]))
    else:
        sys.exit(django_ab_main(__file__, sys.argv[1:], title="Request auditing",
                                unit="seconds per request, against the first variant",
                                unmatched_queries=OTHERS, prepare=other_packages.install))
