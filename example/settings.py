"""Settings of the example project: the published setup, verbatim, on SQLite."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(os.environ.get("DEMO_DIR", Path(__file__).resolve().parent))

SECRET_KEY = "example-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "example.urls"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "example.clinic",
    "activity_audit",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "activity_audit.middleware.AuditLoggingMiddleware",
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
}

AUDIT_SERVICE_NAME = "clinic-demo"
AUDIT_READ_MODELS = ["clinic.Patient"]

from activity_audit import *  # noqa: E402, F403

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": get_json_formatter(), "verbose": get_console_formatter()},  # noqa: F405
    "handlers": {
        "console": {"level": "DEBUG", "class": "logging.StreamHandler", "formatter": "verbose"},
        "file": get_json_handler(level="DEBUG", formatter="json"),  # noqa: F405
        "api_file": get_api_file_handler(),  # noqa: F405
        "audit_file": get_audit_handler(),  # noqa: F405
        "login_file": get_login_handler(),  # noqa: F405
    },
    "root": {"level": "WARNING", "handlers": ["console", "file"]},
    "loggers": {
        "audit.request": {"handlers": ["api_file"], "level": "API", "propagate": False},
        "audit.model": {"handlers": ["audit_file"], "level": "AUDIT", "propagate": False},
        "audit.login": {"handlers": ["login_file"], "level": "LOGIN", "propagate": False},
        "django": {"handlers": ["console", "file"], "level": "WARNING", "propagate": False},
    },
}
