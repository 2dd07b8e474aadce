"""Settings, read when used through one object: ``from activity_audit.conf import conf``.

Every property reads ``django.conf.settings`` on access, so ``override_settings``
works and nothing is written back into settings. Names of earlier releases are
honoured where the new ``AUDIT_*`` name is not set.

Values are memoized until Django's ``setting_changed`` signal fires (sent by
``override_settings`` and pytest-django's ``settings`` fixture): a missing
setting costs an ``AttributeError`` inside ``LazySettings`` on every read, and
the middleware and receivers read a dozen per request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from activity_audit.redaction import DEFAULT_REDACT_HEADERS, DEFAULT_REDACT_KEYS, Redactor

__all__ = ["conf"]

_MISSING: Any = object()

DEFAULT_UNREGISTERED_URLS: Final = [r"^/admin/", r"^/static/", r"^/favicon\.ico"]
#: Model field names masked on every model. Narrower than the body key regex
#: (no "auth", "session", "card" alone): masking "author" or "session_count"
#: would hide what an audit trail is for.
DEFAULT_MASKED_FIELDS_PATTERN: Final = (
    r"(?i)pass(word|wd|phrase|code)?(_?hash)?$|password|secret|token|ssn|api.?key|cvv"
    r"|credit.?card|card.?number|private.?key|otp|^pin$|seed|session.?key|auth.?code"
)
DEFAULT_USER_INFO_CANDIDATES: Final = ("email", "first_name", "last_name", "title", "middle_name")
#: Django's bookkeeping models: never audited unless listed in AUDIT_MODELS_INCLUDE.
DEFAULT_MODELS_EXCLUDE: Final = (
    "sessions",
    "contenttypes",
    "auth.Permission",
    "migrations",
    "admin.LogEntry",
)


_cache: dict[str, Any] = {}


def _lookup(name: str, default: Any, old_names: tuple[str, ...]) -> Any:
    for candidate in (name, *old_names):
        value = getattr(settings, candidate, _MISSING)
        if value is not _MISSING:
            return value
    return default


def _get(name: str, default: Any, *old_names: str) -> Any:
    try:
        return _cache[name]
    except KeyError:
        value = _cache[name] = _lookup(name, default, old_names)
        return value


def _derived(key: str, compute: Callable[[], Any]) -> Any:
    """A value computed from settings, memoized with them (read on every request)."""
    try:
        return _cache[key]
    except KeyError:
        value = _cache[key] = compute()
        return value


def _clear_cache(**kwargs: Any) -> None:
    _cache.clear()


setting_changed.connect(_clear_cache, dispatch_uid="activity_audit.conf.clear_cache")


def _build_redactor(path: str | None, key_pattern: str, headers: tuple[str, ...]) -> Redactor:
    cls: type[Redactor] = import_string(path) if path else Redactor
    return cls(key_pattern=key_pattern, headers=headers)


class Settings:
    """One typed property per setting. See the README's settings table."""

    # -- general -----------------------------------------------------------
    @property
    def service_name(self) -> str:
        return str(_get("AUDIT_SERVICE_NAME", "django"))

    @property
    def log_unchanged_updates(self) -> bool:
        return bool(_get("AUDIT_LOG_UNCHANGED_UPDATES", True))

    @property
    def user_info_fields(self) -> Sequence[str] | None:
        """None means: those of email, first_name, last_name, title, middle_name that exist."""
        value: Sequence[str] | None = _get("AUDIT_USER_INFO_FIELDS", None)
        return value

    @property
    def user_info_plans(self) -> dict[tuple[type[Any], bool], tuple[tuple[str, bool], ...]]:
        """``user_info`` fields (and whether masked) per actor class, for this configuration.

        Filled and bounded by :mod:`activity_audit.actors`; empty when settings change.
        """
        value: dict[tuple[type[Any], bool], tuple[tuple[str, bool], ...]] = _derived(
            "user_info_plans", dict)
        return value

    # -- model selection ---------------------------------------------------
    @property
    def models_include(self) -> Sequence[str] | None:
        value: Sequence[str] | None = _get("AUDIT_MODELS_INCLUDE", None)
        return value

    @property
    def models_exclude(self) -> Sequence[str]:
        value: Sequence[str] = _get("AUDIT_MODELS_EXCLUDE", ())
        return value

    @property
    def excluded_fields(self) -> dict[str, Sequence[str]]:
        value: dict[str, Sequence[str]] = _get("AUDIT_EXCLUDED_FIELDS", {})
        return value

    @property
    def masked_fields(self) -> dict[str, Sequence[str]]:
        value: dict[str, Sequence[str]] = _get("AUDIT_MASKED_FIELDS", {})
        return value

    @property
    def masked_fields_pattern(self) -> str:
        return str(_get("AUDIT_MASKED_FIELDS_PATTERN", DEFAULT_MASKED_FIELDS_PATTERN))

    @property
    def read_models(self) -> Sequence[str]:
        value: Sequence[str] = _get("AUDIT_READ_MODELS", ())
        return value

    @property
    def read_max_ids(self) -> int:
        return int(_get("AUDIT_READ_MAX_IDS", 1000))

    # -- requests ----------------------------------------------------------
    @property
    def registered_urls(self) -> Sequence[str]:
        """Regexes of paths to log; empty means every path not unregistered."""
        value: Sequence[str] = _get("AUDIT_REGISTERED_URLS", ())
        return value

    @property
    def unregistered_urls(self) -> list[str]:
        def combine() -> list[str]:
            default = _get("AUDIT_UNREGISTERED_URLS_DEFAULT", DEFAULT_UNREGISTERED_URLS)
            return [*default, *_get("AUDIT_UNREGISTERED_URLS_EXTRA", ())]

        value: list[str] = _derived("unregistered_urls", combine)
        return value

    @property
    def unregistered_url_patterns(self) -> tuple[re.Pattern[str], ...]:
        """``unregistered_urls`` compiled, once per configuration."""
        value: tuple[re.Pattern[str], ...] = _derived(
            "unregistered_url_patterns",
            lambda: tuple(re.compile(p) for p in self.unregistered_urls))
        return value

    @property
    def registered_url_patterns(self) -> tuple[re.Pattern[str], ...]:
        """``registered_urls`` compiled, once per configuration."""
        value: tuple[re.Pattern[str], ...] = _derived(
            "registered_url_patterns",
            lambda: tuple(re.compile(p) for p in self.registered_urls))
        return value

    @property
    def path_decisions(self) -> dict[str, bool]:
        """Whether a path is audited, remembered per path for this configuration.

        Empty when settings change; its user (the middleware) bounds its size.
        """
        value: dict[str, bool] = _derived("path_decisions", dict)
        return value

    @property
    def log_methods(self) -> Sequence[str] | None:
        value: Sequence[str] | None = _get("AUDIT_LOG_METHODS", None)
        return value

    @property
    def log_methods_upper(self) -> frozenset[str] | None:
        """``log_methods`` uppercased, as a set (None: every method)."""

        def upper() -> frozenset[str] | None:
            methods = self.log_methods
            return None if methods is None else frozenset(m.upper() for m in methods)

        value: frozenset[str] | None = _derived("log_methods_upper", upper)
        return value

    @property
    def log_status_codes(self) -> Sequence[int] | None:
        value: Sequence[int] | None = _get("AUDIT_LOG_STATUS_CODES", None)
        return value

    @property
    def request_id_header(self) -> str:
        return str(_get("AUDIT_REQUEST_ID_HEADER", "X-Request-ID"))

    @property
    def trusted_proxies(self) -> Sequence[str]:
        value: Sequence[str] = _get("AUDIT_TRUSTED_PROXIES", ())
        return value

    @property
    def client_ip_header(self) -> str:
        return str(_get("AUDIT_CLIENT_IP_HEADER", "X-Forwarded-For"))

    @property
    def max_body_bytes(self) -> int:
        return int(_get("AUDIT_MAX_BODY_BYTES", 64 * 1024))

    @property
    def log_text_bodies(self) -> bool:
        """Record text bodies (HTML, XML, plain text) decoded instead of by type and size."""
        return bool(_get("AUDIT_LOG_TEXT_BODIES", False))

    # -- redaction ---------------------------------------------------------
    @property
    def redact_keys(self) -> str:
        return str(_get("AUDIT_REDACT_KEYS", DEFAULT_REDACT_KEYS))

    @property
    def redact_headers(self) -> tuple[str, ...]:
        extra = _get("AUDIT_REDACT_HEADERS", ())
        return tuple(sorted({*DEFAULT_REDACT_HEADERS, *(h.lower() for h in extra)}))

    @property
    def redactor_class(self) -> str | None:
        value: str | None = _get("AUDIT_REDACTOR", None)
        return value

    @property
    def redactor(self) -> Redactor:
        """The configured redactor instance (built once per configuration)."""
        redactor: Redactor = _derived("redactor", lambda: _build_redactor(
            self.redactor_class, self.redact_keys, self.redact_headers))
        return redactor

    # -- outbound calls ----------------------------------------------------
    @property
    def log_external_requests(self) -> bool:
        return bool(_get("AUDIT_LOG_EXTERNAL_REQUESTS", True, "SHOULD_LOG_EXTERNAL_REQUESTS"))

    @property
    def outbound_request_id_header(self) -> str:
        return str(_get("AUDIT_OUTBOUND_REQUEST_ID_HEADER", "X-Request-ID"))

    # -- delivery ----------------------------------------------------------
    @property
    def integrity_key(self) -> str | bytes | None:
        value: str | bytes | None = _get("AUDIT_INTEGRITY_KEY", None)
        return value


conf = Settings()
