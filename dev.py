#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python.

    python dev.py demo            # run the example project, print every kind of audit line
    python dev.py test [ARGS...]  # run the test suite (pytest ARGS...)

Both create ``.venv`` on first use and install the package with what the
command needs; later runs reuse it until pyproject.toml changes. The test
database is chosen by ``AUDIT_TEST_DB`` (sqlite by default, or postgres, mariadb).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def _extras() -> list[str]:
    extras = ["test"]
    database = os.environ.get("AUDIT_TEST_DB", "sqlite")
    if database == "postgres":
        extras.append("postgres")
    elif database == "mariadb":
        extras.append("mariadb")
    return extras


def ensure_venv(extras: list[str]) -> None:
    """Create .venv and install the project with ``extras`` unless already current."""
    if not PYTHON.exists():
        print(f"dev.py: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(",".join(sorted(extras)).encode())
    stamp = VENV / f".dev-installed-{digest.hexdigest()[:16]}"
    if stamp.exists():
        return
    print(f"dev.py: installing the project with [{','.join(extras)}] into {VENV}", flush=True)
    code = subprocess.call(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-e", f"{ROOT}[{','.join(extras)}]"],
    )
    if code:
        raise SystemExit(f"dev.py: pip install failed with exit code {code}")
    for old in VENV.glob(".dev-installed-*"):
        old.unlink()
    stamp.touch()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test"}:
        print(__doc__)
        return 2
    command, args = argv[0], argv[1:]
    if command == "demo":
        # The same environment as the tests: one install serves both commands.
        ensure_venv(_extras())
        return subprocess.call([str(PYTHON), str(ROOT / "example" / "demo.py"), *args], cwd=ROOT)
    ensure_venv(_extras())
    code = subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT)
    if code == 5:
        # pytest's "no tests collected": never let an empty run pass as green.
        print("dev.py: pytest collected no tests", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
