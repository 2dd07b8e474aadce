"""Other audit packages, for comparing whole-package request overhead with this one's.

Each is installed once by pip into ``.bench-packages/<variant>`` of the
checkout (``--no-deps``, only the distributions named here, so the checkout's
Django and DRF stay the ones used), and put first on ``sys.path`` of its own
worker process only: release 1.2.7 of this package has the same import name.
Each is set up as its README says, with its defaults; ``auditlog`` registers
every model (``AUDITLOG_INCLUDE_ALL_MODELS``), as this package audits every
model by default.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: variant -> the distributions pip installs for it.
SPECS: dict[str, tuple[str, ...]] = {
    "v1": ("django-activity-audit==1.2.7",),
    "easyaudit": ("django-easy-audit==1.3.9",),
    "auditlog": ("django-auditlog==3.4.1", "python-dateutil==2.9.0.post0", "six==1.17.0"),
}

#: variant -> (app, middleware), from each package's README.
SETUP: dict[str, tuple[str, str]] = {
    "v1": ("activity_audit", "activity_audit.middleware.AuditLoggingMiddleware"),
    "easyaudit": ("easyaudit", "easyaudit.middleware.easyaudit.EasyAuditMiddleware"),
    "auditlog": ("auditlog", "auditlog.middleware.AuditlogMiddleware"),
}


def package_dir(variant: str) -> Path:
    return ROOT / ".bench-packages" / variant


def install(variants: Sequence[str]) -> None:
    """Install the packages of ``variants`` that are not installed yet (driver side)."""
    for variant in variants:
        if variant not in SPECS:
            continue
        target = package_dir(variant)
        done = target / ".installed"
        if done.exists() and done.read_text() == " ".join(SPECS[variant]):
            continue
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--upgrade", "--target", str(target), *SPECS[variant]], check=True)
        done.write_text(" ".join(SPECS[variant]))


def activate(variant: str) -> None:
    """Put ``variant``'s package first on ``sys.path`` (worker side, before Django starts)."""
    if variant in SPECS:
        sys.path.insert(0, str(package_dir(variant)))


def configure(variant: str, installed_apps: list[str], middleware: list[str],
              log_dir: str) -> dict[str, Any]:
    """Add ``variant``'s app and middleware; its ``LOGGING``."""
    app, middleware_path = SETUP[variant]
    installed_apps.append(app)
    middleware.append(middleware_path)
    logging_config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"console": {"level": "WARNING", "class": "logging.StreamHandler"}},
        "root": {"level": "WARNING", "handlers": ["console"]},
    }
    if variant == "v1":
        # Release 1.2.7's README setup, with the helpers it exports (its README's
        # get_api_file_handler does not exist in it) writing into log_dir.
        from activity_audit import (
            get_api_handler,
            get_audit_handler,
            get_console_formatter,
            get_json_formatter,
        )

        os.makedirs(log_dir, exist_ok=True)
        logging_config["formatters"] = {"json": get_json_formatter(),
                                        "verbose": get_console_formatter()}
        logging_config["handlers"].update({
            "api_file": get_api_handler(os.path.join(log_dir, "api.log")),
            "audit_file": get_audit_handler(os.path.join(log_dir, "audit.log")),
        })
        logging_config["loggers"] = {
            "audit.request": {"handlers": ["api_file"], "level": "API", "propagate": False},
            "audit.model": {"handlers": ["audit_file"], "level": "AUDIT", "propagate": False},
        }
    return logging_config
