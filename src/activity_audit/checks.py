"""System checks for the ``AUDIT_*`` settings, with stable ids.

Every check reads settings through :data:`activity_audit.conf.conf` and reports
a bad value as an ``Error`` at startup instead of failing on the first request.

=========================  ==========================================================
id                         meaning
=========================  ==========================================================
activity_audit.E001        ``AUDIT_SERVICE_NAME`` is not a non-empty string
activity_audit.E002        a setting that takes a list of strings got something else
activity_audit.E003        a setting that takes regexes has one that does not compile
activity_audit.E004        a model label does not name an installed app or model
activity_audit.E005        a per-model field setting is not ``{label: [field, ...]}``
activity_audit.E006        an integer setting is not a positive integer (or a list of ints)
activity_audit.E007        ``AUDIT_REDACTOR`` does not import to a ``Redactor`` subclass
activity_audit.E008        a boolean setting is not a bool
activity_audit.E009        a header-name setting is not a valid HTTP header name
activity_audit.W001        an audit logger is disabled, below its level, or has no handler:
                           its events would be discarded
=========================  ==========================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, TypeGuard

from django.apps import apps
from django.conf import settings
from django.core import checks

from activity_audit.conf import conf

__all__ = ["check_settings", "register"]

_HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def _error(msg: str, id: str, hint: str | None = None) -> checks.Error:
    return checks.Error(msg, hint=hint, id=f"activity_audit.{id}")


def _is_str_list(value: Any) -> TypeGuard[Sequence[str]]:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _check_str_list(name: str, value: Any, allow_none: bool = False) -> list[checks.CheckMessage]:
    if value is None and allow_none:
        return []
    if not _is_str_list(value):
        return [_error(f"{name} must be a list of strings, got {value!r}.", "E002")]
    return []


def _check_regexes(name: str, patterns: Iterable[Any]) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for pattern in patterns:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            errors.append(_error(f"{name} has an invalid regex {pattern!r}: {exc}.", "E003"))
    return errors


def _label_exists(label: str) -> bool:
    if "." in label:
        app_label, _, model_name = label.partition(".")
        try:
            apps.get_model(app_label, model_name)
        except LookupError:
            return False
        return True
    return label in {cfg.label for cfg in apps.get_app_configs()}


def _check_labels(name: str, labels: Sequence[str]) -> list[checks.CheckMessage]:
    return [
        _error(
            f"{name} names {label!r}, which is not an installed app label or 'app_label.Model'.",
            "E004",
        )
        for label in labels
        if not _label_exists(label)
    ]


def _check_field_map(name: str, value: Any) -> list[checks.CheckMessage]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and _is_str_list(v) for k, v in value.items()
    ):
        return [
            _error(
                f"{name} must be a dict of 'app_label.Model' to a list of field names.",
                "E005",
                hint=f'{name} = {{"clinic.Patient": ["notes"]}}',
            )
        ]
    errors = _check_labels(name, [k for k in value if k != "*"])
    for label, fields in value.items():
        if label == "*" or "." not in label:
            continue
        try:
            model = apps.get_model(label)
        except LookupError:
            continue
        known = {f.name for f in model._meta.get_fields()} | {
            getattr(f, "attname", f.name) for f in model._meta.get_fields()
        }
        errors.extend(
            _error(f"{name}[{label!r}] names {f!r}, which is not a field of {label}.", "E005")
            for f in fields
            if f not in known
        )
    return errors


def _check_positive_int(name: str, value: Any) -> list[checks.CheckMessage]:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return [_error(f"{name} must be a positive integer, got {value!r}.", "E006")]
    return []


def _check_bool(name: str, value: Any) -> list[checks.CheckMessage]:
    if not isinstance(value, bool):
        return [_error(f"{name} must be True or False, got {value!r}.", "E008")]
    return []


def check_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    """Validate every ``AUDIT_*`` setting; registered as a Django system check."""
    errors: list[checks.CheckMessage] = []
    service = getattr(settings, "AUDIT_SERVICE_NAME", "django")
    if not isinstance(service, str) or not service:
        errors.append(_error(f"AUDIT_SERVICE_NAME must be a non-empty string, got {service!r}.",
                             "E001"))

    for name in ("AUDIT_MODELS_EXCLUDE", "AUDIT_READ_MODELS", "AUDIT_REGISTERED_URLS",
                 "AUDIT_UNREGISTERED_URLS_DEFAULT", "AUDIT_UNREGISTERED_URLS_EXTRA",
                 "AUDIT_REDACT_HEADERS", "AUDIT_TRUSTED_PROXIES"):
        if hasattr(settings, name):
            errors.extend(_check_str_list(name, getattr(settings, name)))
    for name in ("AUDIT_MODELS_INCLUDE", "AUDIT_USER_INFO_FIELDS", "AUDIT_LOG_METHODS"):
        if hasattr(settings, name):
            errors.extend(_check_str_list(name, getattr(settings, name), allow_none=True))

    for name in ("AUDIT_MODELS_INCLUDE", "AUDIT_MODELS_EXCLUDE", "AUDIT_READ_MODELS"):
        value = getattr(settings, name, None)
        if _is_str_list(value):
            errors.extend(_check_labels(name, value))

    for name in ("AUDIT_REGISTERED_URLS", "AUDIT_UNREGISTERED_URLS_DEFAULT",
                 "AUDIT_UNREGISTERED_URLS_EXTRA"):
        value = getattr(settings, name, None)
        if _is_str_list(value):
            errors.extend(_check_regexes(name, value))
    for name in ("AUDIT_REDACT_KEYS", "AUDIT_MASKED_FIELDS_PATTERN"):
        if hasattr(settings, name):
            errors.extend(_check_regexes(name, [getattr(settings, name)]))

    for name in ("AUDIT_EXCLUDED_FIELDS", "AUDIT_MASKED_FIELDS"):
        if hasattr(settings, name):
            errors.extend(_check_field_map(name, getattr(settings, name)))

    statuses = getattr(settings, "AUDIT_LOG_STATUS_CODES", None)
    if statuses is not None and not (
        isinstance(statuses, (list, tuple, set, frozenset))
        and all(isinstance(c, int) and not isinstance(c, bool) for c in statuses)
    ):
        errors.append(_error(
            f"AUDIT_LOG_STATUS_CODES must be None or a list of integer status codes, "
            f"got {statuses!r}.", "E006", hint="AUDIT_LOG_STATUS_CODES = [200, 201, 400, 500]",
        ))

    for name in ("AUDIT_READ_MAX_IDS", "AUDIT_MAX_BODY_BYTES"):
        if hasattr(settings, name):
            errors.extend(_check_positive_int(name, getattr(settings, name)))

    for name in ("AUDIT_LOG_UNCHANGED_UPDATES", "AUDIT_LOG_EXTERNAL_REQUESTS",
                 "AUDIT_LOG_TEXT_BODIES",
                 "SHOULD_LOG_EXTERNAL_REQUESTS"):
        if hasattr(settings, name):
            errors.extend(_check_bool(name, getattr(settings, name)))

    for name in ("AUDIT_REQUEST_ID_HEADER", "AUDIT_OUTBOUND_REQUEST_ID_HEADER",
                 "AUDIT_CLIENT_IP_HEADER"):
        value = getattr(settings, name, None)
        if value is not None and (not isinstance(value, str) or not _HEADER_RE.match(value)):
            errors.append(_error(f"{name} must be an HTTP header name, got {value!r}.", "E009"))

    if conf.redactor_class is not None:
        errors.extend(_check_redactor(conf.redactor_class))
    return errors


def _check_redactor(path: Any) -> list[checks.CheckMessage]:
    from django.utils.module_loading import import_string

    from activity_audit.redaction import Redactor

    try:
        cls = import_string(path)
    except Exception as exc:
        return [_error(f"AUDIT_REDACTOR {path!r} cannot be imported: {exc}.", "E007")]
    if not (isinstance(cls, type) and issubclass(cls, Redactor)):
        return [_error(f"AUDIT_REDACTOR {path!r} is not a subclass of "
                       "activity_audit.redaction.Redactor.", "E007")]
    return []


def check_loggers(**kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when an audit channel would silently discard its events."""
    import logging

    from activity_audit.schema import CHANNEL_LEVELS

    warnings: list[checks.CheckMessage] = []
    for name, level in CHANNEL_LEVELS.items():
        logger = logging.getLogger(name)
        if logger.disabled or not logger.isEnabledFor(level) or not logger.hasHandlers():
            warnings.append(
                checks.Warning(
                    f"Logger {name!r} discards {logging.getLevelName(level)} events "
                    f"(disabled, level {logging.getLevelName(logger.getEffectiveLevel())}, "
                    f"or no handler).",
                    hint=f'Add {name!r} to LOGGING["loggers"] with level '
                    f'"{logging.getLevelName(level)}" and a handler, as in the README.',
                    id="activity_audit.W001",
                )
            )
    return warnings


def register() -> None:
    checks.register(check_settings)
    checks.register(check_loggers)
