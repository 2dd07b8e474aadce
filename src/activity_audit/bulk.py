"""BULK_CREATE / BULK_UPDATE events: ``QuerySet`` methods patched once, globally.

Django sends no signal for ``bulk_create``, ``bulk_update`` or
``QuerySet.update()``. Each is wrapped once on ``QuerySet`` (not per model):
the original runs unchanged -- same arguments, same queries, same return value
-- and one event per call is recorded afterwards. ``QuerySet.update()`` is
reported as BULK_UPDATE with its filter compiled to SQL (no query is run).
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db.models import Model, QuerySet

from activity_audit import events
from activity_audit.diff import (
    ModelInfo,
    attnames_of,
    capped_ids,
    dispatch,
    model_event,
    model_info,
    native,
    remember_current,
)
from activity_audit.schema import DIAGNOSTIC_LOGGER, MODEL_LOGGER, REDACTED, EventType

__all__ = ["describe_filter", "install"]

_diagnostic = logging.getLogger(DIAGNOSTIC_LOGGER)
F = TypeVar("F", bound=Callable[..., Any])
_MARK: Final = "_activity_audit_original"

# Set while a patched method runs: bulk_update() calls update() per batch,
# which must not be reported a second time.
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "activity_audit_inside_bulk", default=False
)


def _call_inside(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run the unpatched method with nested patched calls not audited again."""
    token = _inside.set(True)
    try:
        return original(*args, **kwargs)
    finally:
        _inside.reset(token)


def _audited(qs: QuerySet[Any]) -> ModelInfo | None:
    if _inside.get():
        return None
    try:
        return model_info(qs.model)
    except Exception:
        _diagnostic.exception("could not decide whether %s is audited", qs.model)
        return None


def _bulk_create(original: F) -> F:
    @functools.wraps(original)
    def bulk_create(self: QuerySet[Any], objs: Iterable[Model], *args: Any, **kwargs: Any) -> Any:
        info = _audited(self)
        if info is None:
            return original(self, objs, *args, **kwargs)
        created = _call_inside(original, self, objs, *args, **kwargs)
        try:
            _record_bulk_create(self, info, created, args, kwargs)
        except Exception:
            _diagnostic.exception("model audit failed in bulk_create of %s", info.label)
        return created

    return bulk_create  # type: ignore[return-value]


def _record_bulk_create(
    qs: QuerySet[Any], info: ModelInfo, created: list[Model], args: Any, kwargs: Any
) -> None:
    # Positional after objs: batch_size, ignore_conflicts, update_conflicts.
    conflicts = bool(
        kwargs.get("ignore_conflicts") or kwargs.get("update_conflicts") or any(args[1:3])
    )
    if not conflicts:
        # What is in memory is what was inserted: later saves diff against it.
        for obj in created:
            remember_current(info, obj)
    if not events.is_enabled(MODEL_LOGGER):
        return
    ids, total = capped_ids(info, (obj.pk for obj in created if obj.pk is not None))
    _dispatch_bulk(qs.db, info, EventType.BULK_CREATE, len(created), list(info.field_names),
                   instance_ids=ids, ids_total=total)


def _bulk_update(original: F) -> F:
    @functools.wraps(original)
    def bulk_update(
        self: QuerySet[Any], objs: Iterable[Model], fields: Iterable[str], *args: Any,
        **kwargs: Any,
    ) -> Any:
        info = _audited(self)
        if info is None:
            return original(self, objs, fields, *args, **kwargs)
        # Django reads ``objs`` once; keep them for the event.
        objs = tuple(objs)
        fields = list(fields)
        rows = _call_inside(original, self, objs, fields, *args, **kwargs)
        try:
            _record_bulk_update(self, info, objs, fields, rows)
        except Exception:
            _diagnostic.exception("model audit failed in bulk_update of %s", info.label)
        return rows

    return bulk_update  # type: ignore[return-value]


def _record_bulk_update(
    qs: QuerySet[Any], info: ModelInfo, objs: tuple[Model, ...], fields: list[str], rows: int
) -> None:
    attnames = attnames_of(info, fields)
    for obj in objs:
        remember_current(info, obj, attnames)
    if not events.is_enabled(MODEL_LOGGER):
        return
    ids, total = capped_ids(info, (obj.pk for obj in objs))
    _dispatch_bulk(qs.db, info, EventType.BULK_UPDATE, rows, _field_names(info, fields),
                   instance_ids=ids, ids_total=total)


def _dispatch_bulk(db: str, info: ModelInfo, event_type: EventType, count: int,
                   fields: list[str], **keys: Any) -> None:
    event = model_event(info, event_type, None, count=count, fields=fields, **keys)
    dispatch(db, f"{event_type} event for {info.name} (count: {count})", event)


def _field_names(info: ModelInfo, names: Iterable[str]) -> list[str]:
    # "clinic_id" and "clinic" are one field: report the field name.
    by_attname = info.name_of_attname
    return [by_attname.get(info.attname_of.get(n, n), n) for n in names]


def describe_filter(qs: QuerySet[Any], info: ModelInfo | None = None) -> dict[str, Any]:
    """The ``WHERE`` clause of ``qs`` as ``{"sql": …, "params": […]}``, without a query.

    ``sql`` is empty when the filter matches every row, and None when it
    matches none (Django then runs no query at all). When the clause mentions
    a masked column of ``info``'s model, or reaches another table (a join or a
    subquery, whose masked columns are not this model's), every parameter is
    masked: which parameter belongs to which column is not known.
    """
    compiler = qs.query.get_compiler(qs.db)
    try:
        sql, params = compiler.compile(qs.query.where)
    except FullResultSet:
        return {"sql": "", "params": []}
    except EmptyResultSet:
        return {"sql": None, "params": []}
    own_table = qs.model._meta.db_table
    other_tables = any(
        getattr(alias, "table_name", own_table) != own_table
        for alias in qs.query.alias_map.values()
    )
    if (
        other_tables
        or "SELECT" in sql.upper()
        or (info is not None and any(column in sql for column in info.masked_columns))
    ):
        return {"sql": sql, "params": [REDACTED] * len(params)}
    return {"sql": sql, "params": [native(p) for p in params]}


def _update(original: F) -> F:
    @functools.wraps(original)
    def update(self: QuerySet[Any], **kwargs: Any) -> Any:
        info = _audited(self)
        if info is None or not events.is_enabled(MODEL_LOGGER):
            return original(self, **kwargs)
        # Compiled before the update runs: the filter as the caller wrote it.
        query: dict[str, Any] | None = None
        try:
            query = describe_filter(self, info)
        except Exception:
            _diagnostic.exception("could not describe the filter of an update")
        rows = _call_inside(original, self, **kwargs)
        try:
            _dispatch_bulk(self.db, info, EventType.BULK_UPDATE, rows,
                           _field_names(info, kwargs), query=query)
        except Exception:
            _diagnostic.exception("model audit failed in update of %s", info.label)
        return rows

    return update  # type: ignore[return-value]


def install() -> None:
    """Patch ``QuerySet.bulk_create``, ``bulk_update`` and ``update`` (idempotent)."""
    for name, wrap in (
        ("bulk_create", _bulk_create),
        ("bulk_update", _bulk_update),
        ("update", _update),
    ):
        current = getattr(QuerySet, name)
        if getattr(current, _MARK, None) is not None:
            continue
        patched = wrap(current)
        setattr(patched, _MARK, current)
        # Keep Django's marker: templates must not call these methods.
        patched.alters_data = True
        setattr(QuerySet, name, patched)
