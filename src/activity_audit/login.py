"""Authentication events (logger ``audit.login``, level LOGIN).

Receivers for Django's ``user_logged_in``, ``user_logged_out`` and
``user_login_failed`` signals. A failed attempt records the attempted username
only: the credentials dict is reduced to the user model's ``USERNAME_FIELD``,
never a password.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

from activity_audit import _json
from activity_audit.conf import conf
from activity_audit.context import describe_actor, get_scope
from activity_audit.events import emit, is_enabled
from activity_audit.middleware import client_ip
from activity_audit.schema import DIAGNOSTIC_LOGGER, LOGIN_LOGGER, LoginEventType

__all__ = ["connect", "disconnect", "login_event"]

_diagnostic: Final = logging.getLogger(DIAGNOSTIC_LOGGER)

#: Attempted usernames are user-controlled: bound their length.
MAX_USERNAME_LENGTH: Final = 256
#: A user agent header is user-controlled too.
MAX_USER_AGENT_LENGTH: Final = 1024

_MESSAGES: Final = {
    LoginEventType.LOGIN: "User logged in",
    LoginEventType.LOGOUT: "User logged out",
    LoginEventType.LOGIN_FAILED: "User login failed",
}


def _bounded(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:limit]


def _username_of(user: Any) -> str | None:
    if user is None or getattr(user, "is_anonymous", False) is True:
        return None
    get_username = getattr(user, "get_username", None)
    return _bounded(get_username() if callable(get_username) else str(user),
                    MAX_USERNAME_LENGTH)


def _attempted_username(credentials: Any) -> str | None:
    if not isinstance(credentials, dict):
        return None
    field = getattr(get_user_model(), "USERNAME_FIELD", "username")
    value = credentials.get(field, credentials.get("username"))
    return _bounded(value, MAX_USERNAME_LENGTH)


def login_event(
    event_type: LoginEventType,
    *,
    success: bool,
    request: Any = None,
    user: Any = None,
    username: str | None = None,
) -> dict[str, Any]:
    """The ``audit.login`` event dict for ``event_type`` (keys of ``schema.LOGIN_KEYS``)."""
    scope = get_scope()
    user_id, user_info = describe_actor(user)
    meta = getattr(request, "META", None) or {}
    return {
        "event_type": event_type.value,
        "success": success,
        "user_id": user_id,
        "user_info": _json.jsonable(user_info),
        "username": username,
        "client_ip": client_ip(request) if request is not None and meta else None,
        "user_agent": _bounded(meta.get("HTTP_USER_AGENT"), MAX_USER_AGENT_LENGTH),
        "request_id": scope.request_id,
        "service_name": conf.service_name,
        "trace_id": scope.trace_id,
        "extra": dict(scope.extra),
    }


def _emit(event_type: LoginEventType, **kwargs: Any) -> None:
    try:
        if not is_enabled(LOGIN_LOGGER):
            return
        emit(LOGIN_LOGGER, _MESSAGES[event_type], login_event(event_type, **kwargs))
    except Exception:
        _diagnostic.exception("could not build the audit login event")


def _on_logged_in(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    _emit(LoginEventType.LOGIN, success=True, request=request, user=user,
          username=_username_of(user))


def _on_logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    _emit(LoginEventType.LOGOUT, success=True, request=request, user=user,
          username=_username_of(user))


def _on_login_failed(sender: Any, credentials: Any = None, request: Any = None,
                     **kwargs: Any) -> None:
    _emit(LoginEventType.LOGIN_FAILED, success=False, request=request,
          username=_attempted_username(credentials))


def connect() -> None:
    """Connect the receivers for Django's auth signals (idempotent)."""
    user_logged_in.connect(_on_logged_in, dispatch_uid="activity_audit.login.logged_in")
    user_logged_out.connect(_on_logged_out, dispatch_uid="activity_audit.login.logged_out")
    user_login_failed.connect(_on_login_failed,
                              dispatch_uid="activity_audit.login.login_failed")


def disconnect() -> None:
    """Disconnect the receivers (tests, or apps that emit their own events)."""
    user_logged_in.disconnect(dispatch_uid="activity_audit.login.logged_in")
    user_logged_out.disconnect(dispatch_uid="activity_audit.login.logged_out")
    user_login_failed.disconnect(dispatch_uid="activity_audit.login.login_failed")
