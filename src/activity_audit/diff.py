"""What a model record says: per-model metadata, loaded-value snapshots, diffs.

The values an instance was loaded with are kept on the instance when
``Model.from_db`` builds it (see :mod:`activity_audit.receivers`), so an UPDATE
is diffed against them without a query. The snapshot is the very tuple of
values Django passed to ``from_db`` -- no copy, except for values that can be
mutated in place (JSON dicts and lists, arrays) -- and becomes a dict only
when a save needs it.

This module also builds the event dicts and sends them at commit, for the
signal receivers, the queryset patches and the READ accounting alike.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import logging
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, Final

import orjson
from django.db import connections
from django.db.models import Model

from activity_audit import events
from activity_audit._json import jsonable
from activity_audit.conf import DEFAULT_MODELS_EXCLUDE, conf
from activity_audit.context import AuditScope, context_fields, fields_for
from activity_audit.schema import (
    DIAGNOSTIC_LOGGER,
    MODEL_LOGGER,
    MODEL_OPTIONAL_KEYS,
    REDACTED,
    EventType,
)

__all__ = [
    "UNKNOWN",
    "ModelInfo",
    "PendingEvent",
    "changes_between",
    "dispatch",
    "dispatch_pending",
    "forget_models",
    "instance_repr",
    "loaded_values",
    "model_event",
    "model_info",
    "prefetched_pks",
    "remember_current",
    "remember_loaded",
]

#: ``old`` of a change whose previous value is not known without a query: the
#: field was deferred when the instance was loaded, or the instance was never
#: loaded from the database (built with a primary key and saved).
UNKNOWN: Final = "[UNKNOWN]"

#: Field names masked on every model: Django's ``User.password`` hash never appears.
ALWAYS_MASKED: Final = frozenset({"password"})

#: Fields that are secrets whatever their name says: a DRF token's key and a
#: session's key are credentials (and primary keys, so ``instance_id`` is masked too).
BUILTIN_MASKED: Final[dict[str, frozenset[str]]] = {
    "authtoken.token": frozenset({"key"}),
    "authtoken.tokenproxy": frozenset({"key"}),
    "sessions.session": frozenset({"session_key", "session_data"}),
}

#: Key in ``instance.__dict__`` holding the snapshot. Not on ``_state``: adding a
#: key there costs more per loaded row (measured) than on the instance's own dict.
SNAPSHOT_KEY: Final = "_activity_audit_loaded"

_MISSING: Any = object()
_diagnostic = logging.getLogger(DIAGNOSTIC_LOGGER)

# Types whose values JSON carries as they are: no conversion call needed.
_NATIVE: Final = frozenset({str, int, float, bool, type(None)})


def _uuid_text(value: uuid.UUID) -> str:
    """``str(value)``, in C: ``UUID.__str__`` formats in Python (2.5x slower)."""
    return orjson.dumps(value)[1:-1].decode()


def _datetime_text(value: dt.datetime) -> str:
    """``value.isoformat()``, in C where orjson writes the same text (naive or UTC).

    Other offsets keep ``isoformat``: RFC 3339, which orjson writes, has no
    seconds in an offset. 3x faster for what Django loads and saves with USE_TZ.
    """
    tz = value.tzinfo
    if tz is None or tz is dt.UTC:
        return orjson.dumps(value)[1:-1].decode()
    return value.isoformat()


# Exact types with a cheap exact conversion (ISO-8601, Decimal and UUID as strings).
_CONVERTERS: Final[dict[type, Callable[[Any], Any]]] = {
    uuid.UUID: _uuid_text,
    decimal.Decimal: str,
    dt.datetime: _datetime_text,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
}
# Types that cannot change in place once loaded: never copied into a snapshot.
_IMMUTABLE: Final = _NATIVE | {bytes, uuid.UUID}
# Field classes whose values are mutable containers (matched by class name so
# contrib.postgres is not imported where it is not installed).
_MUTABLE_FIELD_CLASSES: Final = frozenset({"JSONField", "ArrayField", "HStoreField"})


class ModelInfo:
    """Everything auditing needs to know about one audited model, computed once."""

    __slots__ = (
        "all_attnames",
        "app_label",
        "attname_of",
        "field_names",
        "field_of",
        "fields",
        "label",
        "m2m",
        "masked_columns",
        "model",
        "mutable",
        "mutable_positions",
        "name",
        "name_of_attname",
        "pk_attname",
        "pk_masked",
        "plain_width",
        "read",
    )

    def __init__(self, model: type[Model], read: bool) -> None:
        opts = model._meta
        self.model = model
        self.label: str = opts.label
        self.name: str = model.__name__
        self.app_label: str = opts.app_label
        self.read = read
        excluded = _per_model(conf.excluded_fields, model)
        listed = _per_model(conf.masked_fields, model)
        for label in _labels(model):
            listed |= BUILTIN_MASKED.get(label, frozenset())
        pattern = re.compile(conf.masked_fields_pattern)

        def is_masked(name: str, attname: str) -> bool:
            return (
                name in ALWAYS_MASKED
                or name in listed
                or attname in listed
                or pattern.search(name) is not None
            )

        concrete = opts.concrete_fields
        self.all_attnames: tuple[str, ...] = tuple(f.attname for f in concrete)
        #: (name, attname, masked) of every concrete field not excluded.
        self.fields: tuple[tuple[str, str, bool], ...] = tuple(
            (f.name, f.attname, is_masked(f.name, f.attname))
            for f in concrete
            if f.name not in excluded and f.attname not in excluded
        )
        self.field_names: tuple[str, ...] = tuple(name for name, _, _ in self.fields)
        self.name_of_attname: dict[str, str] = {att: name for name, att, _ in self.fields}
        #: Field name or attname -> attname, to read ``update_fields``.
        self.attname_of: dict[str, str] = {f.name: f.attname for f in concrete}
        self.attname_of.update((f.attname, f.attname) for f in concrete)
        self.field_of: dict[str, Any] = {f.attname: f for f in concrete}
        pk = opts.pk
        self.pk_attname: str = pk.attname
        #: A secret primary key: ids are masked wherever they appear.
        self.pk_masked: bool = is_masked(pk.name, pk.attname)
        #: Database columns of masked fields (a filter naming one has its params masked).
        self.masked_columns: tuple[str, ...] = tuple(
            f.column for f in concrete if f.column and is_masked(f.name, f.attname)
        )
        #: (name, masked) of forward many-to-many fields, read from the prefetch cache.
        self.m2m: tuple[tuple[str, bool], ...] = tuple(
            (f.name, is_masked(f.name, f.name))
            for f in opts.many_to_many
            if f.name not in excluded
        )
        mutable = [
            i for i, f in enumerate(concrete)
            if any(c.__name__ in _MUTABLE_FIELD_CLASSES for c in type(f).__mro__)
        ]
        self.mutable_positions: tuple[int, ...] = tuple(mutable)
        self.mutable: frozenset[str] = frozenset(self.all_attnames[i] for i in mutable)
        #: The length of a full load whose values can be kept as they are, else -1.
        self.plain_width: int = -1 if mutable else len(self.all_attnames)


def _labels(model: type[Model]) -> set[str]:
    """``model``'s lower-case label, and its concrete model's for a proxy."""
    opts = model._meta
    labels = {opts.label_lower}
    if opts.concrete_model is not None:
        labels.add(opts.concrete_model._meta.label_lower)
    return labels


def _matches(model: type[Model], labels: Iterable[str]) -> bool:
    opts = model._meta
    wanted = {label.lower() for label in labels}
    if opts.app_label.lower() in wanted or opts.label_lower in wanted:
        return True
    concrete = opts.concrete_model
    # A proxy follows the decision made for its concrete model.
    return opts.proxy and concrete is not None and concrete._meta.label_lower in wanted


def _per_model(mapping: Mapping[str, Iterable[str]], model: type[Model]) -> frozenset[str]:
    """Field names listed for ``model`` (its label, its app, ``"*"``; a proxy's concrete model)."""
    keys = {"*", model._meta.app_label.lower(), *_labels(model)}
    names: set[str] = set()
    for key, fields in mapping.items():
        if key.lower() in keys:
            names.update(fields)
    return frozenset(names)


def is_audited(model: type[Model]) -> bool:
    """Whether ``model`` is audited under the current settings."""
    if model._meta.auto_created or model._meta.abstract:
        return False
    if _matches(model, conf.models_exclude):
        return False
    include = conf.models_include
    if include is not None:
        return _matches(model, include)
    return not _matches(model, DEFAULT_MODELS_EXCLUDE)


_infos: dict[type[Model], ModelInfo | None] = {}


def model_info(model: type[Model]) -> ModelInfo | None:
    """The cached :class:`ModelInfo` of ``model``, or None when it is not audited."""
    info = _infos.get(model, _MISSING)
    if info is _MISSING:
        info = None
        if is_audited(model):
            info = ModelInfo(model, read=_matches(model, conf.read_models))
        _infos[model] = info
    return info  # type: ignore[no-any-return]


def forget_models() -> None:
    """Drop every cached decision (settings changed)."""
    _infos.clear()


# -- values -----------------------------------------------------------------


def native(value: Any) -> Any:
    """``value`` as JSON-native data (a fast path for the common types)."""
    kind = type(value)
    if kind in _NATIVE:
        return value
    convert = _CONVERTERS.get(kind)
    if convert is not None:
        return convert(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        # A BinaryField holds file content (scans, PDFs): its size, never the bytes.
        return {"binary": True, "size": len(value)}
    return jsonable(value)


def _copy_mutable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_mutable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_mutable(v) for v in value]
    return value


def instance_repr(info: ModelInfo, instance: Model) -> dict[str, Any]:
    """Every audited concrete field (foreign keys as their id), masked fields masked.

    Many-to-many fields are listed as primary keys only when the prefetch cache
    holds them: reading them otherwise would cost a query.
    """
    return values_repr(info, instance.__dict__, prefetched_m2m(info, instance))


def values_repr(
    info: ModelInfo, values: Mapping[str, Any], m2m: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """:func:`instance_repr` of the field values ``values`` (``{attname: value}``).

    ``m2m`` holds the many-to-many fields' lists of primary keys that were known
    (:func:`prefetched_m2m`).
    """
    out: dict[str, Any] = {}
    natives = _NATIVE
    converters = _CONVERTERS
    for name, attname, masked in info.fields:
        value = values.get(attname, _MISSING)
        if value is _MISSING:
            continue  # deferred: not loaded, and reading it would query
        if masked:
            out[name] = REDACTED
            continue
        kind = type(value)
        if kind in natives:
            out[name] = value
        else:
            # native(), inlined: this runs for every field of every event.
            convert = converters.get(kind)
            out[name] = native(value) if convert is None else convert(value)
    if m2m:
        out.update(m2m)
    return out


def prefetched_m2m(info: ModelInfo, instance: Model) -> dict[str, Any] | None:
    """The many-to-many fields whose primary keys the prefetch cache holds, masked as needed."""
    if not info.m2m or not instance.__dict__.get("_prefetched_objects_cache"):
        return None
    out: dict[str, Any] = {}
    for name, masked in info.m2m:
        pks = prefetched_pks(instance, name)
        if pks is not None:
            out[name] = REDACTED if masked else pks
    return out


def prefetched_pks(instance: Model, cache_name: str, as_str: bool = False) -> list[Any] | None:
    """The related primary keys the prefetch cache holds; None when listing them would query."""
    cache = instance.__dict__.get("_prefetched_objects_cache") or {}
    qs = cache.get(cache_name)
    if qs is None or qs._result_cache is None:
        return None
    return sorted_pks((o.pk for o in qs._result_cache), as_str=as_str)


def sorted_pks(pks: Iterable[Any], as_str: bool = False) -> list[Any]:
    """Primary keys sorted (insertion order if unorderable), JSON-native or as strings."""
    items = list(pks)
    with contextlib.suppress(TypeError):
        items.sort()
    return [str(pk) for pk in items] if as_str else [native(pk) for pk in items]


# -- snapshots ----------------------------------------------------------------
#
# ``instance.__dict__[SNAPSHOT_KEY]`` is either the list/tuple of values
# ``from_db`` received for a full load (concrete-field order), or a dict
# ``{attname: value}`` of what is known to be in the database.


def remember_loaded(
    info: ModelInfo, instance: Model, field_names: Collection[str], values: Any
) -> None:
    """Keep what ``from_db`` loaded ``instance`` with (called once per row).

    The receivers inline the common case (a full load of a model with no
    mutable field: keep ``values`` itself); this handles the rest.
    """
    if len(values) == len(info.all_attnames):
        copied = list(values)
        for i in info.mutable_positions:
            copied[i] = _copy_mutable(copied[i])
        instance.__dict__[SNAPSHOT_KEY] = copied
        return
    # A deferred load: the same mapping as Django's ``Model.from_db``.
    it = iter(values)
    snapshot = {a: next(it) for a in info.all_attnames if a in field_names}
    for attname in info.mutable.intersection(snapshot):
        snapshot[attname] = _copy_mutable(snapshot[attname])
    instance.__dict__[SNAPSHOT_KEY] = snapshot


def loaded_values(info: ModelInfo, instance: Model) -> dict[str, Any] | None:
    """``{attname: value}`` the instance holds in the database as far as known, or None."""
    snapshot = instance.__dict__.get(SNAPSHOT_KEY)
    if snapshot is None or isinstance(snapshot, dict):
        return snapshot
    as_dict = snapshot_values(info, snapshot)
    instance.__dict__[SNAPSHOT_KEY] = as_dict
    return as_dict


def snapshot_values(info: ModelInfo, snapshot: Any) -> dict[str, Any] | None:
    """A snapshot (``from_db``'s row or a dict) as ``{attname: value}``; None stays None."""
    if snapshot is None or isinstance(snapshot, dict):
        return snapshot
    return dict(zip(info.all_attnames, snapshot, strict=True))


def remember_current(
    info: ModelInfo, instance: Model, attnames: Iterable[str] | None = None
) -> dict[str, Any]:
    """Record that ``instance``'s current values (or just ``attnames``) are in the DB.

    Expressions (``F("n") + 1``) are kept as they are; a later diff treats
    them as an unknown old value. Returns the new snapshot, which is never
    changed afterwards (a later save replaces it).
    """
    current = instance.__dict__
    if attnames is None:
        # Non-field keys come along; harmless, as only attnames are looked up.
        snapshot = current.copy()
        del snapshot["_state"]
        # Not the previous snapshot: snapshots must not chain.
        snapshot.pop(SNAPSHOT_KEY, None)
        snapshot.pop("_prefetched_objects_cache", None)
    else:
        snapshot = dict(loaded_values(info, instance) or {})
        for a in attnames:
            if a in current:
                snapshot[a] = current[a]
            else:
                snapshot.pop(a, None)
    for attname in info.mutable:
        value = snapshot.get(attname)
        if value is not None and type(value) not in _IMMUTABLE:
            snapshot[attname] = _copy_mutable(value)
    instance.__dict__[SNAPSHOT_KEY] = snapshot
    return snapshot


def current_values(info: ModelInfo, instance: Model) -> dict[str, Any]:
    """A copy of ``instance``'s field values now, for an event built later.

    Values that can change in place (JSON, arrays) are copied too.
    """
    values = instance.__dict__.copy()
    for attname in info.mutable:
        value = values.get(attname)
        if value is not None and type(value) not in _IMMUTABLE:
            values[attname] = _copy_mutable(value)
    return values


def attnames_of(info: ModelInfo, update_fields: Iterable[str] | None) -> frozenset[str] | None:
    """``update_fields`` (names or attnames) as attnames; None means every field."""
    if update_fields is None:
        return None
    return frozenset(info.attname_of.get(name, name) for name in update_fields)


def _same(field: Any, old: Any, new: Any) -> bool:
    """Whether ``old`` and ``new`` are the same stored value (after a first ``!=``)."""
    if not _is_plain(old) or not _is_plain(new) or type(old) is type(new):
        return False
    # "1.50" assigned to a DecimalField equals the Decimal it was loaded as.
    try:
        return bool(field.to_python(old) == field.to_python(new))
    except Exception:
        return False


def _is_plain(value: Any) -> bool:
    """Not an expression (``F("n") + 1``): a value as stored."""
    kind = type(value)
    return kind in _IMMUTABLE or kind in _CONVERTERS or not hasattr(value, "resolve_expression")


def changes_between(
    info: ModelInfo,
    loaded: Mapping[str, Any],
    current: Mapping[str, Any],
    update_attnames: frozenset[str] | None,
) -> dict[str, dict[str, Any]]:
    """``{field: {"old": …, "new": …}}`` of what a save wrote and what changed.

    ``loaded`` holds the values the instance was loaded with (or last saved),
    ``current`` the values saved (both ``{attname: value}``); a field whose old
    value is unknown reports ``old`` as :data:`UNKNOWN`.
    """
    pk_attname = info.pk_attname
    changes: dict[str, dict[str, Any]] = {}
    for name, attname, masked in info.fields:
        if update_attnames is not None and attname not in update_attnames:
            continue
        if attname == pk_attname:
            continue  # an UPDATE matched the row by it: never a change
        new = current.get(attname, _MISSING)
        old = loaded.get(attname, _MISSING)
        if new is _MISSING:
            if old is _MISSING:
                continue  # still deferred: not written by this save
            # Loaded, then expired by the save: Django 6.1 defers a field assigned
            # an expression (F() + 1) when the database cannot return its value.
            changes[name] = {
                "old": REDACTED if masked else native(old) if _is_plain(old) else UNKNOWN,
                "new": REDACTED if masked else UNKNOWN,
            }
            continue
        if old is not _MISSING:
            try:
                if old is new or old == new:
                    continue
            except Exception:
                pass  # a value that cannot be compared is reported as changed
            if _same(info.field_of[attname], old, new):
                continue
            if not _is_plain(old):
                old = _MISSING
        if masked:
            changes[name] = {"old": REDACTED, "new": REDACTED}
        else:
            changes[name] = {
                "old": UNKNOWN if old is _MISSING else native(old),
                "new": native(new),
            }
    return changes


# -- events -------------------------------------------------------------------


#: Keys of a model event before its optional keys (model .. changes).
_HEAD_KEYS: Final = 6


def model_event(
    info: ModelInfo,
    event_type: EventType,
    instance_id: Any,
    instance_repr: dict[str, Any] | None = None,
    changes: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    **keys: Any,
) -> dict[str, Any]:
    """A model event with the context keys (actor, request id, trace id).

    ``context`` is what :func:`~activity_audit.context.context_fields` returned
    when the change was made; taken now when not given. ``keys`` are among
    :data:`~activity_audit.schema.MODEL_OPTIONAL_KEYS`. The event's keys are in
    schema order, which lets the formatter copy it onto its line whole.
    """
    if instance_id is not None:
        if info.pk_masked:
            instance_id = REDACTED
        elif type(instance_id) is uuid.UUID:
            instance_id = _uuid_text(instance_id)
        else:
            instance_id = str(instance_id)
    if context is None:
        context = context_fields()
    event: dict[str, Any] = {
        "model": info.name,
        "app_label": info.app_label,
        "event_type": str(event_type),
        "instance_id": instance_id,
        "instance_repr": instance_repr if instance_repr is not None else {},
        "changes": changes if changes is not None else {},
        "user_id": context["user_id"],
        "user_info": context["user_info"],
        "request_id": context["request_id"],
        "service_name": conf.service_name,
        "trace_id": context["trace_id"],
        "extra": context["extra"],
    }
    if keys:
        unknown = keys.keys() - MODEL_OPTIONAL_KEYS
        if unknown:
            raise TypeError(f"model_event() got unexpected keys {sorted(unknown)}")
        # The optional keys go between "changes" and the context keys.
        items = list(event.items())
        event = dict(items[:_HEAD_KEYS])
        event.update((key, keys[key]) for key in MODEL_OPTIONAL_KEYS if key in keys)
        event.update(items[_HEAD_KEYS:])
    return event


#: The context fields of a change, from the scope and actor it was made with
#: (:func:`~activity_audit.context.capture_actor`), when its event is built.
FieldsOf = Callable[[AuditScope, Any], dict[str, Any]]

# Key on the connection object of its latest _CommitGroup.
_GROUP_KEY: Final = "_activity_audit_commit_group"


class PendingEvent:
    """A model event to emit when its transaction commits, built then by :meth:`build`.

    Inside a transaction it is also its own ``on_commit`` callback: one object
    per event waiting for the commit (they are what the garbage collector
    walks while the transaction lasts).
    """

    __slots__ = ("group", "index")

    group: _CommitGroup
    index: int

    def build(self, fields_of: FieldsOf) -> tuple[str, dict[str, Any]] | None:
        """``(message, event)``, or None when there is no event after all."""
        raise NotImplementedError

    def __call__(self) -> None:
        self.group.run(self.index)


def dispatch(using: str | None, message: str, event: dict[str, Any]) -> None:
    """Emit ``event`` when the transaction on ``using`` commits (now, outside one).

    A rolled-back transaction or savepoint discards it, as Django discards its
    ``on_commit`` callbacks. Never raises.
    """
    dispatch_pending(using, _Built(message, event))


def dispatch_pending(using: str | None, pending: PendingEvent) -> None:
    """:func:`dispatch` an event that ``pending`` builds when it is emitted.

    Inside a transaction the event is built at commit, from values ``pending``
    holds (copies taken at the change): the work leaves the transaction, and
    the transaction's events are built and written in one go.
    """
    try:
        connection = connections[using or "default"]
        if connection.in_atomic_block:
            group: _CommitGroup | None = connection.__dict__.get(_GROUP_KEY)
            hooks = connection.run_on_commit
            if (
                group is None
                or not hooks
                or hooks[-1][1] is not group.last
                or group.savepoint_ids != connection.savepoint_ids
            ):
                group = connection.__dict__[_GROUP_KEY] = _CommitGroup(connection)
            group.add(pending)
            return
    except Exception:
        _diagnostic.exception("could not defer an audit event to commit")
    # Autocommit (or manual transaction management, where on_commit refuses).
    emit_pending([pending])


def emit_pending(pending: list[PendingEvent]) -> None:
    """Build the events and emit them (one write per handler). Never raises.

    Each event is built as the handlers take it, so a transaction's events
    are not all held as dicts at once.
    """
    if len(pending) == 1:
        built = _build(pending[0], fields_for)
        if built is not None:
            events.emit(MODEL_LOGGER, *built)
    elif pending:
        events.emit_many(MODEL_LOGGER, _built(pending))


def _build(pending: PendingEvent, fields_of: FieldsOf) -> tuple[str, dict[str, Any]] | None:
    try:
        return pending.build(fields_of)
    except Exception:
        _diagnostic.exception("could not build a model event")
        return None


def _built(pending: list[PendingEvent]) -> Iterator[tuple[str, dict[str, Any]]]:
    # The events of a transaction come from one scope and actor: their context
    # fields are made once (and shared, read only).
    last: tuple[Any, Any] = (None, _MISSING)
    fields: dict[str, Any] = {}

    def fields_of(scope: AuditScope, actor: Any) -> dict[str, Any]:
        nonlocal last, fields
        if scope is not last[0] or actor is not last[1]:
            fields = fields_for(scope, actor)
            last = (scope, actor)
        return fields

    for item in pending:
        built = _build(item, fields_of)
        if built is not None:
            yield built


class _Built(PendingEvent):
    """A pending event built already."""

    __slots__ = ("event", "message")

    def __init__(self, message: str, event: dict[str, Any]) -> None:
        self.message = message
        self.event = event

    def build(self, fields_of: FieldsOf) -> tuple[str, dict[str, Any]]:
        return self.message, self.event


class _CommitGroup:
    """Model events registered one after another under the same savepoints.

    Each event is its own ``on_commit`` callback, so Django's rules apply to
    each as to any callback (a savepoint rollback discards them, and
    ``captureOnCommitCallbacks`` sees them). Its members share their savepoints
    and nothing else was registered between them, so a rollback discards all of
    them or none, and a commit runs them back to back: the first callback run
    after a commit emits every event of the group at once; the others find
    theirs done. A callback run inside the transaction (by
    ``captureOnCommitCallbacks``) emits its own event only.
    """

    __slots__ = ("connection", "emitted_to", "last", "members", "savepoint_ids")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.savepoint_ids: list[str] = list(connection.savepoint_ids)
        self.members: list[PendingEvent | None] = []
        #: The latest member (the latest ``on_commit`` callback, if nothing came after).
        self.last: PendingEvent | None = None
        #: After a commit: the callbacks before this index have nothing left to emit.
        self.emitted_to = 0

    def add(self, pending: PendingEvent) -> None:
        pending.group = self
        pending.index = len(self.members)
        self.members.append(pending)
        self.connection.on_commit(pending, robust=True)
        self.last = pending

    def run(self, index: int) -> None:
        """The ``on_commit`` callback of member ``index`` (never raises)."""
        try:
            members = self.members
            if self.connection.in_atomic_block:
                stop = index + 1
            elif index < self.emitted_to:
                return  # emitted with the first callback of the group
            else:
                stop = self.emitted_to = len(members)
            due: list[PendingEvent] = []
            for i in range(index, stop):
                member = members[i]
                if member is not None:
                    members[i] = None
                    due.append(member)
            emit_pending(due)
        except Exception:
            _diagnostic.exception("could not emit the model events of a transaction")


def message_for(event_type: str, info: ModelInfo, instance_id: Any) -> str:
    """``"CREATE event for Patient (id: 6f77…)"``."""
    return f"{event_type} event for {info.name} (id: {instance_id})"


def capped_ids(info: ModelInfo, pks: Iterable[Any]) -> tuple[list[str], int]:
    """At most ``AUDIT_READ_MAX_IDS`` ids as strings (like ``instance_id``), and the total."""
    items = list(pks)
    limit = conf.read_max_ids
    if info.pk_masked:
        return [REDACTED] * min(limit, len(items)), len(items)
    return [str(pk) for pk in items[:limit]], len(items)
