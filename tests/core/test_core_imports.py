"""The core imports no Django: classes in LOGGING load before the app registry."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "activity_audit",
    "activity_audit.levels",
    "activity_audit.schema",
    "activity_audit.context",
    "activity_audit.redaction",
    "activity_audit._json",
    "activity_audit.formatters",
    "activity_audit.handlers",
    "activity_audit.logconfig",
    "activity_audit.events",
    "activity_audit.bodies",
    "activity_audit.testing",
    "activity_audit.integrity",
    "activity_audit.cli",
    "activity_audit.tracing",
    "activity_audit.outbound",
    "activity_audit.protocols",
    "activity_audit.httpx_client",
]


def test_core_modules_do_not_import_django() -> None:
    code = (
        "import sys, os\n"
        "os.environ.pop('DJANGO_SETTINGS_MODULE', None)\n"
        f"for name in {CORE!r}:\n"
        "    __import__(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
