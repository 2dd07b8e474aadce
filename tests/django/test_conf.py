from __future__ import annotations

from django.test import override_settings

from activity_audit.conf import DEFAULT_UNREGISTERED_URLS, conf
from activity_audit.redaction import Redactor


def test_settings_are_read_when_used() -> None:
    assert conf.service_name == "test-service"
    with override_settings(AUDIT_SERVICE_NAME="other"):
        assert conf.service_name == "other"
    assert conf.service_name == "test-service"


def test_earlier_names_are_honoured() -> None:
    assert conf.log_external_requests is True
    with override_settings(SHOULD_LOG_EXTERNAL_REQUESTS=False):
        assert conf.log_external_requests is False
        with override_settings(AUDIT_LOG_EXTERNAL_REQUESTS=True):
            assert conf.log_external_requests is True


def test_unregistered_urls_default_plus_extra() -> None:
    assert conf.unregistered_urls == DEFAULT_UNREGISTERED_URLS
    with override_settings(AUDIT_UNREGISTERED_URLS_EXTRA=[r"^/health"]):
        assert conf.unregistered_urls == [*DEFAULT_UNREGISTERED_URLS, r"^/health"]
    with override_settings(AUDIT_UNREGISTERED_URLS_DEFAULT=[]):
        assert conf.unregistered_urls == []


def test_defaults_are_not_written_back_into_settings() -> None:
    from django.conf import settings

    _ = conf.max_body_bytes, conf.redact_keys, conf.read_max_ids
    assert not hasattr(settings, "AUDIT_MAX_BODY_BYTES")
    assert not hasattr(settings, "AUDIT_REDACT_KEYS")


class UpperRedactor(Redactor):
    substitute = "XXX"


def test_redactor_is_swappable_and_follows_settings() -> None:
    assert type(conf.redactor) is Redactor
    with override_settings(AUDIT_REDACTOR=f"{__name__}.UpperRedactor", AUDIT_REDACT_KEYS="^pin$"):
        redactor = conf.redactor
        assert isinstance(redactor, UpperRedactor)
        assert redactor.redact({"pin": 1, "password": 2}) == {"pin": "XXX", "password": 2}
    with override_settings(AUDIT_REDACT_HEADERS=["X-Tenant-Secret-Header"]):
        assert conf.redactor.is_sensitive_header("x-tenant-secret-header")


def test_user_info_never_carries_masked_fields() -> None:
    from django.contrib.auth.models import User

    from activity_audit.actors import describe_user
    from activity_audit.schema import REDACTED

    user = User(pk=7, username="ada", email="ada@example.org", password="pbkdf2$secret-hash")
    with override_settings(AUDIT_USER_INFO_FIELDS=["email", "password", "username"]):
        assert describe_user(user) == (
            "7", {"email": "ada@example.org", "password": REDACTED, "username": "ada"}
        )
