"""``python -m activity_audit verify PATH...``."""

from __future__ import annotations

import sys

from activity_audit.cli import main

if __name__ == "__main__":
    sys.exit(main())
