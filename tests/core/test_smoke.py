from __future__ import annotations

import logging


def test_levels_registered() -> None:
    import activity_audit

    assert logging.getLevelName("AUDIT") == activity_audit.AUDIT == 21
    assert logging.getLevelName("API") == 22
    assert logging.getLevelName("LOGIN") == 23
