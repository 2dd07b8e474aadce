"""Who is acting, in which request: the audit context.

One :class:`contextvars.ContextVar` holds an immutable :class:`AuditScope`.
Entering a scope merges into the current one and is undone by token in
``finally``, so nothing leaks between requests, threads or asyncio tasks.

The middleware binds a scope per request; ``audit_context`` does the same for
Celery tasks, management commands and scripts::

    with audit_context(actor=user, reason="nightly import"):
        ...

    @audit_context(actor="cron")
    def job(): ...
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType, TracebackType
from typing import Any, ParamSpec, TypeVar

from activity_audit._json import jsonable
from activity_audit.schema import DIAGNOSTIC_LOGGER

__all__ = [
    "AuditScope",
    "ScopeState",
    "add_scope_end_hook",
    "aiterate_in_scope",
    "audit_context",
    "bind",
    "capture_actor",
    "context_fields",
    "current_actor",
    "describe_actor",
    "fields_for",
    "get_scope",
    "iterate_in_scope",
    "set_actor_describer",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_EMPTY_EXTRA: Mapping[str, Any] = MappingProxyType({})


class ScopeState:
    """Mutable state shared by a scope and the scopes nested inside it.

    Created by the outermost scope; holds what is collected over the scope's
    lifetime (the READ accumulator) and is handed to the end hooks.
    """

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class AuditScope:
    """The current audit context. Immutable; nested scopes make merged copies."""

    #: The acting user (a user instance, an id, or any label such as ``"cron"``).
    actor: Any = None
    #: Called when an event is built and ``actor`` is None: resolves the actor late,
    #: after authentication has run (DRF authenticates inside the view).
    actor_resolver: Callable[[], Any] | None = None
    request_id: str | None = None
    trace_id: str | None = None
    #: The incoming W3C ``traceparent``, propagated on outbound calls.
    traceparent: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY_EXTRA)
    state: ScopeState | None = None

    def merged(self, **changes: Any) -> AuditScope:
        extra = changes.pop("extra", None)
        scope = replace(self, **changes) if changes else self
        if extra:
            # JSON-native once, here: every event of the scope ships ``extra`` as it is.
            scope = replace(scope, extra=MappingProxyType({**self.extra, **jsonable(extra)}))
        return scope


_EMPTY = AuditScope()
_scope: contextvars.ContextVar[AuditScope] = contextvars.ContextVar(
    "activity_audit_scope", default=_EMPTY
)
_end_hooks: list[Callable[[AuditScope], None]] = []
_UNSET: Any = object()


def get_scope() -> AuditScope:
    """The current :class:`AuditScope` (an empty one outside any context)."""
    return _scope.get()


def current_actor() -> Any:
    """The actor of the current scope, resolving a late resolver if needed."""
    scope = _scope.get()
    if scope.actor is not None:
        return scope.actor
    if scope.actor_resolver is not None:
        try:
            return scope.actor_resolver()
        except Exception:
            logging.getLogger(DIAGNOSTIC_LOGGER).exception("audit actor resolver failed")
    return None


def _default_describer(actor: Any) -> tuple[str | None, dict[str, Any]]:
    if actor is None:
        return None, {}
    pk = getattr(actor, "pk", None)
    return (str(pk) if pk is not None else str(actor)), {}


_describer: Callable[[Any], tuple[str | None, dict[str, Any]]] = _default_describer
#: Whether ``_describer`` returns JSON-native ``user_info`` (no conversion needed).
_describer_native = True


def set_actor_describer(
    describer: Callable[[Any], tuple[str | None, dict[str, Any]]], *, native: bool = False
) -> None:
    """Install how an actor becomes ``(user_id, user_info)``.

    The Django app installs one that reads the configured user fields; the core
    default uses ``actor.pk`` or ``str(actor)``. ``native=True`` promises that
    ``user_info`` holds JSON-native values only; otherwise they are converted.
    """
    global _describer, _describer_native
    _describer = describer
    _describer_native = native


def describe_actor(actor: Any) -> tuple[str | None, dict[str, Any]]:
    """``(user_id, user_info)`` for ``actor``, JSON-native; ``(None, {})`` for no actor.

    Never raises.
    """
    try:
        user_id, user_info = _describer(actor)
        if user_info and not _describer_native:
            user_info = jsonable(user_info)
        return user_id, user_info
    except Exception:
        logging.getLogger(DIAGNOSTIC_LOGGER).exception("audit actor describer failed")
        return None, {}


def capture_actor() -> tuple[AuditScope, Any]:
    """The current scope and its actor, resolved now: what :func:`fields_for` needs later.

    For an event built after the change it records (at commit): who acted is
    decided when the change is made, the fields are made when the event is.
    """
    scope = _scope.get()
    if scope.actor is None and scope.actor_resolver is not None:
        return scope, current_actor()
    return scope, scope.actor


def fields_for(scope: AuditScope, actor: Any) -> dict[str, Any]:
    """:func:`context_fields` of a scope and actor taken by :func:`capture_actor`."""
    # No actor is (None, {}) whatever the describer: skip the call (most saves
    # outside a request have none).
    user_id, user_info = (None, {}) if actor is None else describe_actor(actor)
    extra = scope.extra
    return {
        "user_id": user_id,
        "user_info": user_info,
        "request_id": scope.request_id,
        "trace_id": scope.trace_id,
        "extra": dict(extra) if extra else {},
    }


def context_fields() -> dict[str, Any]:
    """The context keys every event carries: actor, request id, trace id, extra.

    Call it where the event is built: the actor is resolved now, not later.
    Every value is JSON-native.
    """
    return fields_for(*capture_actor())


def add_scope_end_hook(hook: Callable[[AuditScope], None]) -> None:
    """Call ``hook(scope)`` when an outermost scope ends (idempotent)."""
    if hook not in _end_hooks:
        _end_hooks.append(hook)


def _run_end_hooks(scope: AuditScope) -> None:
    for hook in list(_end_hooks):
        try:
            hook(scope)
        except Exception:
            logging.getLogger(DIAGNOSTIC_LOGGER).exception("audit scope end hook failed")


def iterate_in_scope(iterable: Iterable[T], scope: AuditScope) -> Iterator[T]:
    """Iterate ``iterable`` with ``scope`` current while each item is produced.

    For work that runs after its scope ended -- a streaming response's content
    is produced after the middleware returned. The iteration gets its own
    :class:`ScopeState` (its own READ accumulator) and runs the end hooks when
    it finishes. The scope is set and reset around each item, so nothing leaks
    into whatever runs between two items, in whichever thread that is.
    """
    own = replace(scope, state=ScopeState())
    iterator = iter(iterable)
    try:
        while True:
            token = _scope.set(own)
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                _scope.reset(token)
            yield item
    finally:
        token = _scope.set(own)
        try:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        finally:
            try:
                _run_end_hooks(own)
            finally:
                _scope.reset(token)


async def aiterate_in_scope(iterable: AsyncIterable[T], scope: AuditScope) -> AsyncIterator[T]:
    """:func:`iterate_in_scope` for an async iterable."""
    own = replace(scope, state=ScopeState())
    iterator = aiter(iterable)
    try:
        while True:
            token = _scope.set(own)
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                return
            finally:
                _scope.reset(token)
            yield item
    finally:
        token = _scope.set(own)
        try:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            try:
                _run_end_hooks(own)
            finally:
                _scope.reset(token)


@contextmanager
def bind(**values: Any) -> Iterator[AuditScope]:
    """Merge ``values`` into the current scope for the ``with`` block.

    Keyword names are :class:`AuditScope` fields; ``extra`` is merged key by key.
    The outermost scope creates the shared :class:`ScopeState` and runs the end
    hooks when it closes.
    """
    current = _scope.get()
    outermost = current.state is None
    if outermost:
        values["state"] = ScopeState()
    scope = current.merged(**values)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        try:
            if outermost:
                _run_end_hooks(scope)
        finally:
            _scope.reset(token)


class audit_context:
    """Attribute changes to an actor, as a context manager or a decorator.

    Args:
        actor: the user instance (or id, or label) to attribute events to.
        request_id: correlation id to put on events; kept from the enclosing
            scope when not given.
        **extra: free-form values merged into every event's ``extra``. Nested
            contexts merge; inner values win.
    """

    def __init__(self, actor: Any = _UNSET, *, request_id: Any = _UNSET, **extra: Any) -> None:
        self._values: dict[str, Any] = {}
        if actor is not _UNSET:
            self._values["actor"] = actor
        if request_id is not _UNSET:
            self._values["request_id"] = request_id
        if extra:
            self._values["extra"] = extra
        # The blocks this instance has open, per thread / asyncio task: one
        # module-level ``system = audit_context(actor="system")`` may be entered
        # by many of them at once, and each must exit its own.
        self._open: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
            "activity_audit_open_blocks", default=()
        )

    def __enter__(self) -> AuditScope:
        cm = bind(**self._values)
        scope = cm.__enter__()
        self._open.set((*self._open.get(), cm))
        return scope

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        *rest, cm = self._open.get()
        self._open.set(tuple(rest))
        cm.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> AuditScope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        values = self._values
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                with bind(**values):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with bind(**values):
                return func(*args, **kwargs)

        return wrapper
