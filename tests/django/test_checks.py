from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from activity_audit.checks import check_settings


def ids(**settings: Any) -> list[str]:
    with override_settings(**settings):
        return [m.id or "" for m in check_settings()]


def test_default_settings_pass() -> None:
    assert check_settings() == []


def test_registered_with_django() -> None:
    assert check_settings in checks.registry.registry.get_checks()


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"AUDIT_SERVICE_NAME": ""}, "activity_audit.E001"),
        ({"AUDIT_SERVICE_NAME": 3}, "activity_audit.E001"),
        ({"AUDIT_READ_MODELS": "testapp.Patient"}, "activity_audit.E002"),
        ({"AUDIT_UNREGISTERED_URLS_EXTRA": ["(unclosed"]}, "activity_audit.E003"),
        ({"AUDIT_REDACT_KEYS": "[bad"}, "activity_audit.E003"),
        ({"AUDIT_MODELS_EXCLUDE": ["nosuchapp"]}, "activity_audit.E004"),
        ({"AUDIT_READ_MODELS": ["testapp.NoSuchModel"]}, "activity_audit.E004"),
        ({"AUDIT_EXCLUDED_FIELDS": ["testapp.Patient"]}, "activity_audit.E005"),
        ({"AUDIT_MASKED_FIELDS": {"testapp.Patient": ["no_such_field"]}}, "activity_audit.E005"),
        ({"AUDIT_MAX_BODY_BYTES": 0}, "activity_audit.E006"),
        ({"AUDIT_READ_MAX_IDS": "10"}, "activity_audit.E006"),
        ({"AUDIT_LOG_STATUS_CODES": ["200"]}, "activity_audit.E006"),
        ({"AUDIT_REDACTOR": "no.such.Redactor"}, "activity_audit.E007"),
        ({"AUDIT_REDACTOR": "collections.OrderedDict"}, "activity_audit.E007"),
        ({"SHOULD_LOG_EXTERNAL_REQUESTS": "yes"}, "activity_audit.E008"),
        ({"AUDIT_REQUEST_ID_HEADER": "X Request Id"}, "activity_audit.E009"),
    ],
)
def test_bad_values_are_reported_with_stable_ids(settings: dict[str, Any], expected: str) -> None:
    assert expected in ids(**settings)


def test_good_values_pass() -> None:
    assert ids(
        AUDIT_MODELS_INCLUDE=["testapp", "auth.User"],
        AUDIT_MODELS_EXCLUDE=["testapp.Note"],
        AUDIT_READ_MODELS=["testapp.Patient"],
        AUDIT_EXCLUDED_FIELDS={"testapp.Patient": ["notes"]},
        AUDIT_MASKED_FIELDS={"testapp.Patient": ["email", "clinic_id"]},
        AUDIT_MAX_BODY_BYTES=1024,
        AUDIT_REQUEST_ID_HEADER="X-Correlation-ID",
    ) == []


def test_loggers_configured_by_test_settings_pass() -> None:
    from activity_audit.checks import check_loggers

    assert check_loggers() == []


def test_logger_that_would_discard_events_warns() -> None:
    import logging

    from activity_audit.checks import check_loggers

    logger = logging.getLogger("audit.login")
    saved = logger.level, logger.propagate, logger.handlers[:]
    logger.setLevel(logging.WARNING)
    try:
        messages = check_loggers()
    finally:
        logger.setLevel(saved[0])
    assert [m.id for m in messages] == ["activity_audit.W001"]
    assert "'audit.login'" in messages[0].msg
