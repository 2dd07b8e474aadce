"""How a Django user becomes ``user_id`` and ``user_info`` on an event."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Final

from activity_audit.conf import DEFAULT_USER_INFO_CANDIDATES, conf
from activity_audit.diff import ALWAYS_MASKED
from activity_audit.schema import REDACTED

__all__ = ["describe_user"]


@lru_cache(maxsize=8)
def _default_fields(model: type[Any]) -> tuple[str, ...]:
    names = {f.name for f in model._meta.concrete_fields}
    return tuple(n for n in DEFAULT_USER_INFO_CANDIDATES if n in names)


def describe_user(actor: Any) -> tuple[str | None, dict[str, Any]]:
    """``(user_id, user_info)`` for a user, an anonymous user, or any other actor.

    Anonymous and missing users give ``(None, {})``: ``user_id`` is null, never
    the string ``"None"``. Non-user actors (``"cron"``) keep their label as id.
    """
    if actor is None or getattr(actor, "is_anonymous", False) is True:
        return None, {}
    pk = getattr(actor, "pk", None)
    if pk is None:
        return (None, {}) if hasattr(actor, "_meta") else (str(actor), {})
    # __class__, not type(): a SimpleLazyObject (request.user) reports the user's class.
    key = (actor.__class__, hasattr(actor, "_meta"))
    plans = conf.user_info_plans
    plan = plans.get(key)
    if plan is None:
        plan = _plan_for(*key)
        if len(plans) >= _PLAN_CACHE_SIZE:
            plans.clear()
        plans[key] = plan
    info: dict[str, Any] = {}
    for name, masked in plan:
        if masked:
            # AUDIT_USER_INFO_FIELDS = ["password"] must not put the hash on every event.
            info[name] = REDACTED
            continue
        value = getattr(actor, name, None)
        info[name] = value if value is None or isinstance(value, (str, int, bool)) else str(value)
    return str(pk), info


#: Actor classes whose plan is remembered (per configuration; see ``conf.user_info_plans``).
_PLAN_CACHE_SIZE: Final = 64


def _plan_for(cls: Any, is_model: bool) -> tuple[tuple[str, bool], ...]:
    fields = conf.user_info_fields
    if fields is None:
        fields = _default_fields(cls) if is_model else ()
    return _info_plan(tuple(fields), conf.masked_fields_pattern)


@lru_cache(maxsize=16)
def _info_plan(fields: tuple[str, ...], pattern: str) -> tuple[tuple[str, bool], ...]:
    """``(field, masked)`` per user_info field: decided once, not per event."""
    masked = re.compile(pattern)
    return tuple((n, n in ALWAYS_MASKED or masked.search(n) is not None) for n in fields)
