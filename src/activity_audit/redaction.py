"""Redaction of secrets, applied where an event is built, before any handler.

A key regex decides; a matching key's whole value is replaced by one fixed
substitute (no half-masks). Dicts and lists are walked at any depth. Subclass
:class:`Redactor` and point ``AUDIT_REDACTOR`` at it to change the rules, as
Django's ``SafeExceptionReporterFilter`` is swapped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from itertools import chain, repeat
from typing import Any, Final

from activity_audit.schema import REDACTED

__all__ = [
    "DEFAULT_REDACT_HEADERS",
    "DEFAULT_REDACT_KEYS",
    "REDACTED",
    "Redactor",
]

#: Keys (JSON/form fields, query params, header names) whose values are secrets.
DEFAULT_REDACT_KEYS: Final = r"(?i)pass|secret|token|api.?key|auth|ssn|credit|card|cvv|session|csrf"

#: Headers always redacted, whatever the key regex says (compared case-insensitively).
DEFAULT_REDACT_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-csrftoken",
    }
)

_MAX_DEPTH: Final = 64
_KEY_CACHE_SIZE: Final = 4096
# Key sets remembered for the dict fast path, and the widest dict that uses it.
_SHAPE_CACHE_SIZE: Final = 1024
_SHAPE_MAX_KEYS: Final = 64
_SCALARS: Final = (str, int, float, bool, type(None))
# Exact types, for set checks over many values at once (the types JSON parsers produce).
_SCALAR_TYPES: Final = frozenset(_SCALARS)
_DICT_TYPE: Final = frozenset({dict})


class Redactor:
    """Replaces the values of sensitive keys with :data:`REDACTED`.

    Args:
        key_pattern: regex searched in each key; a match redacts the whole value.
        headers: header names always redacted (case-insensitive), in addition
            to headers whose name matches ``key_pattern``.
    """

    substitute: str = REDACTED

    def __init__(
        self,
        key_pattern: str | re.Pattern[str] = DEFAULT_REDACT_KEYS,
        headers: Iterable[str] = DEFAULT_REDACT_HEADERS,
    ) -> None:
        self.key_re = re.compile(key_pattern) if isinstance(key_pattern, str) else key_pattern
        self.headers = frozenset(h.lower().replace("_", "-") for h in headers)
        # Keys repeat across rows and requests; a regex search per key dominated
        # the cost of redacting a JSON list response.
        self._key_cache: dict[str, bool] = {}
        # The rows of a JSON list share their keys: for a key set with no
        # sensitive key, a dict of scalars is copied whole (an 11-row list
        # response: 19 us key by key, 11 us this way).
        self._shape_cache: dict[tuple[Any, ...], bool] = {}
        # The same for the keys of all the rows of a list at once.
        self._key_set_cache: dict[frozenset[Any], bool] = {}
        # Header names repeat on every request and response: lower() and a
        # regex search per header cost 8 us per response (2 us cached).
        self._header_cache: dict[str, bool] = {}

    def is_sensitive_key(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        cache = self._key_cache
        try:
            return cache[key]
        except KeyError:
            if len(cache) >= _KEY_CACHE_SIZE:
                cache.clear()
            sensitive = cache[key] = self.key_re.search(key) is not None
            return sensitive

    def is_sensitive_header(self, name: str) -> bool:
        cache = self._header_cache
        try:
            return cache[name]
        except KeyError:
            pass
        normal = name.lower().replace("_", "-")
        sensitive = normal in self.headers or self.key_re.search(normal) is not None
        if len(cache) >= _KEY_CACHE_SIZE:
            cache.clear()
        cache[name] = sensitive
        return sensitive

    def _has_sensitive_key(self, keys: tuple[Any, ...]) -> bool:
        cache = self._shape_cache
        try:
            return cache[keys]
        except KeyError:
            pass
        sensitive = self.is_sensitive_key
        found = any(sensitive(k) for k in keys)
        if len(cache) >= _SHAPE_CACHE_SIZE:
            cache.clear()
        cache[keys] = found
        return found

    def redact(self, data: Any, _depth: int = 0) -> Any:
        """Return a copy of ``data`` with sensitive keys' values replaced, at any depth."""
        kind = type(data)
        # Exact dict first: an ABC isinstance(…, Mapping) costs more than the copy.
        is_mapping = kind is dict
        if not is_mapping:
            if isinstance(data, _SCALARS):
                return data
            is_mapping = isinstance(data, Mapping)
        if _depth > _MAX_DEPTH and (is_mapping or isinstance(data, (list, tuple))):
            # Too deep to walk: a secret could hide below, so the whole subtree goes.
            return self.substitute
        if is_mapping:
            if (
                kind is dict  # keys known hashable, for the key-set cache
                and len(data) <= _SHAPE_MAX_KEYS
                and not self._has_sensitive_key(tuple(data))
                and all(map(isinstance, data.values(), repeat(_SCALARS)))
            ):
                return dict(data)
            sensitive = self.is_sensitive_key
            substitute = self.substitute
            depth = _depth + 1
            return {
                k: substitute if sensitive(k)
                else (v if isinstance(v, _SCALARS) else self.redact(v, depth))
                for k, v in data.items()
            }
        if isinstance(data, (list, tuple)):
            depth = _depth + 1
            return [v if isinstance(v, _SCALARS) else self.redact(v, depth) for v in data]
        return data

    def redact_parsed(self, data: Any, source: bytes | None = None) -> Any:
        """Like :meth:`redact`, for freshly parsed JSON that nothing else refers to.

        The result is equal to ``redact(data)``, but the dicts and lists of
        ``data`` are redacted in place instead of copied: a parsed response
        body is never used again, and copying it was a third of its cost.
        A subclass that overrides :meth:`redact` has its ``redact`` called.

        Args:
            data: the parsed value.
            source: the JSON text ``data`` was parsed from, if at hand. Counting
                its brackets tells whether the rows of a list hold any nested
                value, for less than looking at every value.
        """
        if type(self).redact is not Redactor.redact:
            return self.redact(data)
        kind = type(data)
        if kind is dict or kind is list:
            return self._redact_in_place(data, 0, source)
        return self.redact(data)

    def _redact_in_place(
        self, data: dict[Any, Any] | list[Any], depth: int, source: bytes | None
    ) -> Any:
        """:meth:`redact` of an exact dict or list at ``depth``, modifying it.

        ``source`` is the document's JSON text, passed down only while each
        container above ``data`` holds no other container: the document then
        has ``depth`` containers besides those in ``data``.
        """
        if depth > _MAX_DEPTH:
            return self.substitute
        child = depth + 1
        if type(data) is dict:
            if len(data) <= _SHAPE_MAX_KEYS and not self._has_sensitive_key(tuple(data)):
                if _SCALAR_TYPES.issuperset(map(type, data.values())):
                    return data
                sensitive = None
            else:
                sensitive = self.is_sensitive_key
            if source is not None:
                nested = [v for v in data.values() if not isinstance(v, _SCALARS)]
                if len(nested) != 1:
                    source = None
            substitute = self.substitute
            for key, value in data.items():
                if sensitive is not None and sensitive(key):
                    # Replacing the value of an existing key is safe while iterating.
                    data[key] = substitute
                elif not isinstance(value, _SCALARS):
                    data[key] = self._redact_child(value, child, source)
            return data
        if data and child <= _MAX_DEPTH and _DICT_TYPE.issuperset(map(type, data)):
            # Rows (a JSON list response): when no row holds a nested value and no
            # row has a sensitive key there is nothing to do, and that is decided
            # without a Python loop per row.
            if source is not None:
                # Every container of a JSON text opens with its own "{" or "[".
                flat = source.count(b"{") + source.count(b"[") == depth + 1 + len(data)
            else:
                flat = _SCALAR_TYPES.issuperset(
                    map(type, chain.from_iterable(map(dict.values, data))))
            if flat and not self._has_sensitive_key_in(frozenset().union(*data)):
                return data
        for index, value in enumerate(data):
            if not isinstance(value, _SCALARS):
                data[index] = self._redact_child(value, child, None)
        return data

    def _has_sensitive_key_in(self, keys: frozenset[Any]) -> bool:
        cache = self._key_set_cache
        try:
            return cache[keys]
        except KeyError:
            pass
        found = any(map(self.is_sensitive_key, keys))
        if len(cache) >= _SHAPE_CACHE_SIZE:
            cache.clear()
        cache[keys] = found
        return found

    def _redact_child(self, value: Any, depth: int, source: bytes | None) -> Any:
        kind = type(value)
        if kind is dict or kind is list:
            return self._redact_in_place(value, depth, source)
        return self.redact(value, depth)

    def redact_headers(self, headers: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``headers`` with sensitive header values replaced whole."""
        return {
            k: self.substitute if self.is_sensitive_header(k) else v for k, v in headers.items()
        }

    def redact_pairs(self, pairs: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """Redact a list of ``(key, value)`` pairs (query strings keep repeated keys)."""
        return [(k, self.substitute if self.is_sensitive_key(k) else v) for k, v in pairs]
