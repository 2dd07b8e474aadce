"""READ accounting for the models listed in ``AUDIT_READ_MODELS``.

Inside a request or an ``audit_context``, every instance of those models that
Django builds from a query is tallied on the outermost scope's state; when the
scope ends, one READ event per model lists the ids read (at most
``AUDIT_READ_MAX_IDS``) with the totals. Outside any scope, each loaded
instance is one READ event at once. Counting adds no query: it happens where
``Model.from_db`` builds the instance.

Rows of ``values()`` / ``values_list()`` querysets of those models are read
too: they are counted as their iterable yields them (the ids where the rows
carry the primary key), on the scope like instances; outside any scope, one
READ event per queryset evaluation, when its iteration ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Final

from django.db.models import Model
from django.db.models.query import (
    BaseIterable,
    FlatValuesListIterable,
    NamedValuesListIterable,
    ValuesIterable,
    ValuesListIterable,
)

from activity_audit import diff, events
from activity_audit.context import AuditScope, get_scope
from activity_audit.diff import ModelInfo, capped_ids, message_for, model_event
from activity_audit.schema import DIAGNOSTIC_LOGGER, MODEL_LOGGER, EventType

__all__ = ["flush", "install", "record"]

_diagnostic = logging.getLogger(DIAGNOSTIC_LOGGER)
_MARK: Final = "_activity_audit_original"
#: The iterables of values querysets, patched once; each counts the rows it yields.
_VALUES_ITERABLES: Final = (
    ValuesIterable, ValuesListIterable, NamedValuesListIterable, FlatValuesListIterable,
)

#: Key of the tally in ``ScopeState.data``.
STATE_KEY: Final = "activity_audit.reads"


class _Tally:
    __slots__ = ("count", "ids")

    def __init__(self) -> None:
        #: Distinct primary keys in first-read order (a dict keeps the order).
        self.ids: dict[Any, None] = {}
        #: Instances loaded, a row read twice counting twice.
        self.count = 0


def record(info: ModelInfo, instance: Model) -> None:
    """Count one loaded instance of a READ-audited model."""
    state = get_scope().state
    if state is None:
        if events.is_enabled(MODEL_LOGGER):
            pk = instance.pk
            event = model_event(
                info, EventType.READ, pk, instance_ids=capped_ids(info, [pk])[0], ids_total=1,
                count=1,
            )
            message = message_for(EventType.READ, info, event["instance_id"])
            events.emit(MODEL_LOGGER, message, event)
        return
    tallies: dict[ModelInfo, _Tally] | None = state.data.get(STATE_KEY)
    if tallies is None:
        tallies = state.data[STATE_KEY] = {}
    tally = tallies.get(info)
    if tally is None:
        tally = tallies[info] = _Tally()
    tally.count += 1
    tally.ids[instance.pk] = None


def _read_event(info: ModelInfo, tally: _Tally) -> tuple[str, dict[str, Any]]:
    ids, total = capped_ids(info, tally.ids)
    event = model_event(
        info, EventType.READ, None, instance_ids=ids, ids_total=total, count=tally.count
    )
    return f"READ event for {info.name} ({total} ids)", event


def _pk_of_row(iterable: BaseIterable[Any], info: ModelInfo) -> Callable[[Any], Any] | None:
    """How to take the primary key from the rows ``iterable`` yields; None if they lack it."""
    queryset = iterable.queryset
    query = queryset.query
    pk = info.model._meta.pk
    pk_names = ("pk", pk.name, pk.attname)
    names: tuple[str, ...] = tuple(getattr(queryset, "_fields", None) or ())
    if isinstance(iterable, ValuesIterable):
        key = next((k for k in names or (pk.attname,) if k in pk_names), None)
        return None if key is None else lambda row: row.get(key)
    if names:
        position = next((i for i, k in enumerate(names) if k in pk_names), None)
    elif not query.extra_select:
        # No fields named: the model's concrete fields, in order, then any annotations.
        position = info.all_attnames.index(pk.attname)
    else:
        position = None
    if position is None:
        return None
    if isinstance(iterable, FlatValuesListIterable):
        return (lambda row: row) if position == 0 else None
    return lambda row: row[position]


def _counting(
    cls: type[BaseIterable[Any]], original: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    def __iter__(self: BaseIterable[Any]) -> Iterator[Any]:
        info = None
        # Counted once, by the class's own iterator (NamedValuesListIterable's calls
        # ValuesListIterable's).
        if type(self) is cls:
            try:
                info = diff.model_info(self.queryset.model)
            except Exception:
                _diagnostic.exception("could not decide whether %s is audited",
                                      self.queryset.model)
        if info is None or not info.read:
            return original(self)  # type: ignore[no-any-return]
        return _counted(self, info, original(self))

    __iter__.__doc__ = original.__doc__
    setattr(__iter__, _MARK, original)
    return __iter__


def _counted(
    iterable: BaseIterable[Any], info: ModelInfo, rows: Iterator[Any]
) -> Iterator[Any]:
    try:
        pk_of = _pk_of_row(iterable, info)
    except Exception:
        _diagnostic.exception("could not find the primary key in %s rows", info.label)
        pk_of = None
    tally = _Tally()
    try:
        for row in rows:
            tally.count += 1
            if pk_of is not None:
                try:
                    tally.ids[pk_of(row)] = None
                except Exception:
                    _diagnostic.exception("could not read the primary key of a %s row",
                                          info.label)
                    pk_of = None
            yield row
    finally:
        # Also when the caller stops early (the rows it took were read).
        if tally.count:
            _add(info, tally)


def _add(info: ModelInfo, tally: _Tally) -> None:
    """Count the rows of a values queryset: on the scope, or one READ now outside any."""
    try:
        state = get_scope().state
        if state is None:
            if events.is_enabled(MODEL_LOGGER):
                events.emit(MODEL_LOGGER, *_read_event(info, tally))
            return
        tallies: dict[ModelInfo, _Tally] = state.data.setdefault(STATE_KEY, {})
        total = tallies.get(info)
        if total is None:
            tallies[info] = tally
        else:
            total.count += tally.count
            total.ids.update(tally.ids)
    except Exception:
        _diagnostic.exception("model audit failed counting %s rows read", info.label)


def install() -> None:
    """Patch the ``__iter__`` of Django's values iterables (idempotent)."""
    for cls in _VALUES_ITERABLES:
        current = cls.__dict__["__iter__"]
        if getattr(current, _MARK, None) is None:
            cls.__iter__ = _counting(cls, current)  # type: ignore[method-assign]


def flush(scope: AuditScope) -> None:
    """Scope end hook: one READ event per model read in ``scope``."""
    state = scope.state
    if state is None:
        return
    tallies: dict[ModelInfo, _Tally] | None = state.data.pop(STATE_KEY, None)
    if not tallies or not events.is_enabled(MODEL_LOGGER):
        return
    for info, tally in tallies.items():
        events.emit(MODEL_LOGGER, *_read_event(info, tally))
