"""Model auditing: our receivers of Django's model signals, and where they hook in.

* ``post_save`` -> CREATE / UPDATE (with ``changes``), ``post_delete`` -> DELETE,
  ``m2m_changed`` -> M2M_ADD / M2M_REMOVE / M2M_CLEAR. They are connected per
  audited model (``sender=``), so unaudited models keep Django's fast deletes
  and fast m2m adds.
* ``Model.from_db`` is wrapped once, globally, to keep the values each audited
  instance was loaded with (the UPDATE diff needs no query) and to count READs;
  ``Model.refresh_from_db`` to keep that snapshot true after a reload.
* :mod:`activity_audit.bulk` patches the bulk ``QuerySet`` methods.

Events are built when the signal fires and emitted when the transaction commits.
Nothing here raises into the application.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any, Final

from django.apps import apps
from django.core.signals import setting_changed
from django.db.models import Model, signals

from activity_audit import bulk, diff, events, reads
from activity_audit.conf import conf
from activity_audit.context import AuditScope, add_scope_end_hook, capture_actor
from activity_audit.levels import AUDIT
from activity_audit.schema import DIAGNOSTIC_LOGGER, MODEL_LOGGER, EventType

__all__ = ["connect", "reconnect"]

_diagnostic = logging.getLogger(DIAGNOSTIC_LOGGER)
# Asked on every save and delete: the logger itself, not a lookup by channel name.
_model_logger = logging.getLogger(MODEL_LOGGER)
_UID: Final = "activity_audit.receivers"
_MISSING: Any = object()

_M2M_EVENTS: Final = {
    "post_add": EventType.M2M_ADD,
    "post_remove": EventType.M2M_REMOVE,
    # Taken before the rows go: the prefetch cache still lists what is cleared.
    "pre_clear": EventType.M2M_CLEAR,
}

#: Settings that decide which models are audited and how (the cached ModelInfo).
_MODEL_SETTINGS: Final = frozenset(
    {
        "AUDIT_MODELS_INCLUDE",
        "AUDIT_MODELS_EXCLUDE",
        "AUDIT_EXCLUDED_FIELDS",
        "AUDIT_MASKED_FIELDS",
        "AUDIT_MASKED_FIELDS_PATTERN",
        "AUDIT_READ_MODELS",
        "INSTALLED_APPS",
    }
)

#: through model -> the ManyToManyField it belongs to.
_through_fields: dict[type[Model], Any] = {}
#: (signal, sender) pairs we connected, to undo when settings change.
_connected: list[tuple[signals.ModelSignal, type[Model]]] = []


def _on_post_save(
    sender: type[Model],
    instance: Model,
    created: bool,
    update_fields: Collection[str] | None = None,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    try:
        info = diff.model_info(sender)
        if info is None:
            return
        attnames = None if update_fields is None else diff.attnames_of(info, update_fields)
        # What the diff compares with, before the snapshot moves on.
        loaded = instance.__dict__.get(diff.SNAPSHOT_KEY)
    except Exception:
        _diagnostic.exception("model audit failed in post_save of %s", sender)
        return
    saved: dict[str, Any] | None = None
    try:
        # Whatever happens to the event, the next save diffs against this one.
        saved = diff.remember_current(info, instance, attnames)
    except Exception:
        _diagnostic.exception("model audit could not snapshot %s", sender)
    try:
        if _model_logger.isEnabledFor(AUDIT):
            # A full snapshot is a copy of the values now; else take one.
            values = saved if attnames is None and saved is not None else (
                diff.current_values(info, instance))
            diff.dispatch_pending(using, _SaveEvent(
                info, created, instance.pk, values, loaded, attnames,
                diff.prefetched_m2m(info, instance) if info.m2m else None, *capture_actor(),
            ))
    except Exception:
        _diagnostic.exception("model audit failed in post_save of %s", sender)


class _SaveEvent(diff.PendingEvent):
    """The CREATE/UPDATE event of a save, built from copies taken when it happened.

    A slotted object rather than a closure: one object kept per event until
    commit, not a function and a cell per value (the garbage collector counts them).
    """

    __slots__ = ("actor", "attnames", "created", "info", "loaded", "m2m", "pk", "scope",
                 "values")

    def __init__(self, info: diff.ModelInfo, created: bool, pk: Any, values: dict[str, Any],
                 loaded: Any, attnames: frozenset[str] | None, m2m: dict[str, Any] | None,
                 scope: AuditScope, actor: Any) -> None:
        self.info = info
        self.created = created
        self.pk = pk
        self.values = values
        self.loaded = loaded
        self.attnames = attnames
        self.m2m = m2m
        #: The scope and actor of the change (the event's context fields are made from them).
        self.scope = scope
        self.actor = actor

    def build(self, fields_of: diff.FieldsOf) -> tuple[str, dict[str, Any]] | None:
        info = self.info
        if self.created:
            event_type = EventType.CREATE
            changes: dict[str, Any] = {}
        else:
            event_type = EventType.UPDATE
            old = diff.snapshot_values(info, self.loaded) or {}
            changes = diff.changes_between(info, old, self.values, self.attnames)
            if not changes and not conf.log_unchanged_updates:
                return None
        event = diff.model_event(info, event_type, self.pk,
                                 diff.values_repr(info, self.values, self.m2m), changes,
                                 fields_of(self.scope, self.actor))
        return diff.message_for(event_type, info, event["instance_id"]), event


def _on_post_delete(
    sender: type[Model], instance: Model, using: str | None = None, **kwargs: Any
) -> None:
    try:
        info = diff.model_info(sender)
        if info is None or not _model_logger.isEnabledFor(AUDIT):
            return
        diff.dispatch_pending(using, _DeleteEvent(
            info, instance.pk, diff.current_values(info, instance),
            diff.prefetched_m2m(info, instance) if info.m2m else None, *capture_actor(),
        ))
    except Exception:
        _diagnostic.exception("model audit failed in post_delete of %s", sender)


class _DeleteEvent(diff.PendingEvent):
    """The DELETE event of a row, built from copies taken when it was deleted."""

    __slots__ = ("actor", "info", "m2m", "pk", "scope", "values")

    def __init__(self, info: diff.ModelInfo, pk: Any, values: dict[str, Any],
                 m2m: dict[str, Any] | None, scope: AuditScope, actor: Any) -> None:
        self.info = info
        self.pk = pk
        self.values = values
        self.m2m = m2m
        self.scope = scope
        self.actor = actor

    def build(self, fields_of: diff.FieldsOf) -> tuple[str, dict[str, Any]]:
        info = self.info
        event = diff.model_event(info, EventType.DELETE, self.pk,
                                 diff.values_repr(info, self.values, self.m2m), None,
                                 fields_of(self.scope, self.actor))
        return diff.message_for(EventType.DELETE, info, event["instance_id"]), event


def _on_m2m_changed(
    sender: type[Model],
    instance: Model,
    action: str,
    reverse: bool,
    model: type[Model],
    pk_set: set[Any] | None,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    event_type = _M2M_EVENTS.get(action)
    if event_type is None:
        return
    try:
        info = diff.model_info(type(instance))
        field = _through_fields.get(sender)
        if info is None or field is None or not events.is_enabled(MODEL_LOGGER):
            return
        if reverse:
            name = field.remote_field.get_accessor_name()
            cache_name = field.related_query_name()
        else:
            name = cache_name = field.name
        if pk_set is not None:
            related_ids: list[Any] | None = diff.sorted_pks(pk_set, as_str=True)
        else:
            related_ids = diff.prefetched_pks(instance, cache_name, as_str=True)
        pk = instance.pk
        event = diff.model_event(
            info,
            event_type,
            pk,
            diff.instance_repr(info, instance),
            field=name,
            related_model=model._meta.label,
            related_ids=related_ids,
        )
        diff.dispatch(using, diff.message_for(event_type, info, event["instance_id"]), event)
    except Exception:
        _diagnostic.exception("model audit failed in m2m_changed of %s", sender)


# -- loading ----------------------------------------------------------------------


def _install_loading_hooks() -> None:
    """Wrap ``Model.from_db`` and ``Model.refresh_from_db`` once, globally."""
    if getattr(Model.from_db, "_activity_audit", False):
        return
    original_from_db = Model.from_db.__func__  # type: ignore[attr-defined]
    original_refresh = Model.refresh_from_db
    infos = diff._infos
    model_info = diff.model_info
    remember_loaded = diff.remember_loaded
    record_read = reads.record
    snapshot_key = diff.SNAPSHOT_KEY

    # **kwargs: Django 6.1 passes fetch_mode (keyword only). Forwarded only when
    # present: this runs once per loaded row, and a call with **kwargs costs
    # several times a plain one.
    def from_db(
        cls: type[Model], db: str | None, field_names: Collection[str], values: Any,
        **kwargs: Any,
    ) -> Model:
        new: Model = (
            original_from_db(cls, db, field_names, values, **kwargs) if kwargs
            else original_from_db(cls, db, field_names, values)
        )
        # Inline cache hit: this runs once per loaded row.
        info = infos.get(cls, _MISSING)
        if info is _MISSING:
            try:
                info = model_info(cls)
            except Exception:
                _diagnostic.exception("could not decide whether %s is audited", cls)
                info = None
        if info is not None:
            try:
                if len(values) == info.plain_width:
                    # Immutable values: the row itself is the snapshot, no copy.
                    new.__dict__[snapshot_key] = values
                else:
                    remember_loaded(info, new, field_names, values)
                if info.read:
                    record_read(info, new)
            except Exception:
                _diagnostic.exception("model audit failed loading %s", cls)
        return new

    def refresh_from_db(
        self: Model,
        using: str | None = None,
        fields: Collection[str] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        original_refresh(self, using, fields, *args, **kwargs)
        try:
            info = diff.model_info(type(self))
            if info is not None:
                # The refreshed fields now hold what the database holds.
                diff.remember_current(info, self, diff.attnames_of(info, fields))
        except Exception:
            _diagnostic.exception("model audit failed refreshing %s", type(self))

    from_db._activity_audit = True  # type: ignore[attr-defined]
    from_db.__doc__ = original_from_db.__doc__
    refresh_from_db.__doc__ = original_refresh.__doc__
    Model.from_db = classmethod(from_db)  # type: ignore[method-assign,assignment,arg-type]
    Model.refresh_from_db = refresh_from_db  # type: ignore[method-assign,assignment]


# -- connection -------------------------------------------------------------------


def _connect_sender(signal: signals.ModelSignal, receiver: Any, sender: type[Model]) -> None:
    signal.connect(receiver, sender=sender, weak=False, dispatch_uid=(_UID, sender._meta.label))
    _connected.append((signal, sender))


def reconnect() -> None:
    """(Re)connect the receivers to every model audited under the current settings."""
    for signal, sender in _connected:
        signal.disconnect(sender=sender, dispatch_uid=(_UID, sender._meta.label))
    _connected.clear()
    _through_fields.clear()
    diff.forget_models()
    for model in apps.get_models():
        if diff.model_info(model) is None:
            continue
        _connect_sender(signals.post_save, _on_post_save, model)
        _connect_sender(signals.post_delete, _on_post_delete, model)
        opts = model._meta
        m2m_fields: list[Any] = [*opts.many_to_many]
        m2m_fields += [rel.field for rel in opts.related_objects if rel.many_to_many]
        for field in m2m_fields:
            through = field.remote_field.through
            if isinstance(through, type) and through not in _through_fields:
                _through_fields[through] = field
                _connect_sender(signals.m2m_changed, _on_m2m_changed, through)


def _on_setting_changed(setting: str, **kwargs: Any) -> None:
    if setting in _MODEL_SETTINGS:
        try:
            reconnect()
        except Exception:
            _diagnostic.exception("could not reconnect model auditing after %s changed", setting)


def connect() -> None:
    """Connect the model receivers and install the loading hooks and queryset patches.

    Called from ``AppConfig.ready``; idempotent.
    """
    _install_loading_hooks()
    bulk.install()
    reads.install()
    add_scope_end_hook(reads.flush)
    setting_changed.connect(_on_setting_changed, weak=False, dispatch_uid=_UID)
    reconnect()
