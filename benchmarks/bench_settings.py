"""Django settings for benchmark workers: one project, auditing on or off.

Environment:
    BENCH_VARIANT  "on" (activity_audit installed, published LOGGING writing real
                   files), "async" (installed, the same LOGGING with the
                   get_async_* handlers), "off" (the same project without the app),
                   "receivers" (as "off"; bench_models connects no-op receivers), or
                   another audit package set up as its README says: "v1" (this
                   package's release 1.2.7), "easyaudit" (django-easy-audit),
                   "auditlog" (django-auditlog, every model registered); see
                   ``benchmarks/other_packages.py``
    BENCH_DB       "sqlite" (a file database) or "postgres"
    BENCH_DIR      scratch directory for the SQLite file and the log files
    BENCH_SLOT     which database of its own this process uses (default: the
                   variant), so workers running side by side never share rows:
                   a file per slot on SQLite, a schema per slot on PostgreSQL
"""

from __future__ import annotations

import os

from benchmarks.other_packages import SPECS as OTHER_PACKAGES

VARIANT = os.environ.get("BENCH_VARIANT", "on")
if VARIANT not in OTHER_PACKAGES:
    from activity_audit import *  # noqa: F403 - the published setup
BENCH_DIR = os.environ.get("BENCH_DIR", "/tmp/activity-audit-bench")
SLOT = os.environ.get("BENCH_SLOT", VARIANT)
BENCH_PG_SCHEMA = f"bench_{SLOT}"
os.makedirs(BENCH_DIR, exist_ok=True)

SECRET_KEY = "benchmark-only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.testapp.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "rest_framework.authtoken",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
if VARIANT in ("on", "async"):
    INSTALLED_APPS.append("activity_audit")
    MIDDLEWARE.append("activity_audit.middleware.AuditLoggingMiddleware")

if os.environ.get("BENCH_DB", "sqlite") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": os.environ.get("AUDIT_TEST_PG_USER", "postgres"),
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "OPTIONS": {"options": f"-c search_path={BENCH_PG_SCHEMA}"},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(BENCH_DIR, f"bench-{SLOT}.sqlite3"),
        }
    }

AUDIT_SERVICE_NAME = "bench"
_LOG_DIR = os.path.join(BENCH_DIR, "logs")
if VARIANT in OTHER_PACKAGES:
    from benchmarks.other_packages import configure

    LOGGING = configure(VARIANT, INSTALLED_APPS, MIDDLEWARE, _LOG_DIR)
    # Read by django-auditlog only: every model registered, as this package audits all.
    AUDITLOG_INCLUDE_ALL_MODELS = True
else:
    if VARIANT == "async":
        _api_handler, _audit_handler = get_async_api_handler, get_async_audit_handler  # noqa: F405
    else:
        _api_handler, _audit_handler = get_api_file_handler, get_audit_handler  # noqa: F405
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": get_json_formatter(), "verbose": get_console_formatter()},  # noqa: F405
        "handlers": {
            "console": {"level": "WARNING", "class": "logging.StreamHandler",
                        "formatter": "verbose"},
            "file": get_json_handler(level="INFO", formatter="json", log_dir=_LOG_DIR),  # noqa: F405
            "api_file": _api_handler(log_dir=_LOG_DIR),
            "audit_file": _audit_handler(log_dir=_LOG_DIR),
        },
        "root": {"level": "INFO", "handlers": ["console", "file"]},
        "loggers": {
            "audit.request": {"handlers": ["api_file"], "level": "API", "propagate": False},
            "audit.model": {"handlers": ["audit_file"], "level": "AUDIT", "propagate": False},
            "django": {"handlers": ["console", "file"], "level": "INFO", "propagate": False},
        },
    }
