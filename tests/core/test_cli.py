"""``activity-audit verify`` / ``python -m activity_audit verify``: exit codes and reports."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from activity_audit.cli import main
from activity_audit.handlers import AuditFileHandler
from activity_audit.levels import AUDIT
from activity_audit.schema import MODEL_LOGGER

KEY = "cli-key"


@pytest.fixture
def chained(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    handler = AuditFileHandler(path, integrity_key=KEY)
    for i in range(10):
        handler.handle(logging.makeLogRecord({
            "name": MODEL_LOGGER, "levelno": AUDIT, "levelname": "AUDIT", "msg": f"event {i}",
        }))
    handler.close()
    return path


def run_module(*args: str, key: str | None = KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AUDIT_INTEGRITY_KEY"}
    if key is not None:
        env["AUDIT_INTEGRITY_KEY"] = key
    return subprocess.run([sys.executable, "-m", "activity_audit", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_intact_exits_zero(chained: Path) -> None:
    result = run_module("verify", str(chained))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK:")
    # Not a TTY: no progress bar on stderr.
    assert result.stderr == ""


def test_tampered_exits_one_with_json_report(chained: Path) -> None:
    lines = chained.read_bytes().splitlines(keepends=True)
    del lines[4]
    chained.write_bytes(b"".join(lines))
    result = run_module("verify", "--json", str(chained))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert [(b["kind"], b["file"], b["line"]) for b in report["breaks"]] == [
        ("deleted", str(chained), 5)]


def test_text_report_names_file_and_line(chained: Path, tmp_path: Path) -> None:
    lines = chained.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b"event 2", b"event 9")
    chained.write_bytes(b"".join(lines))
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    out, err = io.StringIO(), io.StringIO()
    from activity_audit.cli import _parser, run_verify

    code = run_verify(_parser().parse_args(["verify", "--key-file", str(key_file),
                                            str(chained)]), stdout=out, stderr=err)
    assert code == 1
    assert f"{chained}:4: modified" in out.getvalue()


def test_usage_error_and_missing_file(tmp_path: Path) -> None:
    assert main(["nonsense"]) == 2
    assert main(["verify", str(tmp_path / "missing.log")]) == 2
