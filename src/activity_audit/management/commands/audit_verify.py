"""``manage.py audit_verify PATH...``: the CLI's ``verify`` with ``AUDIT_INTEGRITY_KEY``."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from activity_audit.cli import add_verify_arguments, run_verify
from activity_audit.conf import conf


class Command(BaseCommand):
    help = "Verify the tamper-evident chain of audit log files (exit 1 on a break)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_verify_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        namespace = argparse.Namespace(**options)
        # The CLI writes whole lines itself (and a carriage-return progress bar).
        self.stdout.ending = ""
        self.stderr.ending = ""
        code = run_verify(namespace, key=conf.integrity_key if not options["key_file"] else None,
                          stdout=self.stdout, stderr=self.stderr)
        if code:
            raise SystemExit(code)
