"""Small helpers shared by several test modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a real handler wrote to ``path``."""
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]
