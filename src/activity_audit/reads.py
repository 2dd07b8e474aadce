"""READ accounting for the models listed in ``AUDIT_READ_MODELS``.

Inside a request or an ``audit_context``, every instance of those models that
Django builds from a query is tallied on the outermost scope's state; when the
scope ends, one READ event per model lists the ids read (at most
``AUDIT_READ_MAX_IDS``) with the totals. Outside any scope, each loaded
instance is one READ event at once. Counting adds no query: it happens where
``Model.from_db`` builds the instance.
"""

from __future__ import annotations

from typing import Any, Final

from django.db.models import Model

from activity_audit import events
from activity_audit.context import AuditScope, get_scope
from activity_audit.diff import ModelInfo, capped_ids, message_for, model_event
from activity_audit.schema import MODEL_LOGGER, EventType

__all__ = ["flush", "record"]

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


def flush(scope: AuditScope) -> None:
    """Scope end hook: one READ event per model read in ``scope``."""
    state = scope.state
    if state is None:
        return
    tallies: dict[ModelInfo, _Tally] | None = state.data.pop(STATE_KEY, None)
    if not tallies or not events.is_enabled(MODEL_LOGGER):
        return
    for info, tally in tallies.items():
        ids, total = capped_ids(info, tally.ids)
        event = model_event(
            info, EventType.READ, None, instance_ids=ids, ids_total=total, count=tally.count
        )
        message = f"READ event for {info.name} ({total} ids)"
        events.emit(MODEL_LOGGER, message, event)
