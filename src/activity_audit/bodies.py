"""Describing HTTP bodies for events (core: shared by the middleware and the clients).

A body is recorded as data, never as Python ``str()``: JSON parsed, forms
parsed, text decoded, anything else by type and size. Everything goes through
the redactor first. Bodies over the cap are not parsed: they are recorded by
type and size with ``truncated: true`` (text keeps its first ``max_bytes``).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qsl

import orjson

from activity_audit.redaction import Redactor

__all__ = ["describe_body", "describe_multipart", "media_type", "pairs_to_dict"]


#: Content types remembered, and the longest one (the request's is client-controlled).
_MEDIA_TYPE_CACHE_SIZE: Final = 256
_MEDIA_TYPE_CACHE_MAX_LENGTH: Final = 256
_media_types: dict[str, str] = {}


def media_type(content_type: str | None) -> str:
    """``"application/json; charset=utf-8"`` -> ``"application/json"``."""
    if not content_type:
        return ""
    # A service sends a handful of distinct Content-Type values, on every request.
    try:
        return _media_types[content_type]
    except KeyError:
        pass
    mtype = content_type.split(";", 1)[0].strip().lower()
    if len(content_type) <= _MEDIA_TYPE_CACHE_MAX_LENGTH:
        if len(_media_types) >= _MEDIA_TYPE_CACHE_SIZE:
            _media_types.clear()
        _media_types[content_type] = mtype
    return mtype


def _charset(content_type: str | None) -> str:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def is_json(mtype: str) -> bool:
    return mtype == "application/json" or mtype.endswith("+json")


def is_text(mtype: str) -> bool:
    return mtype.startswith("text/") or mtype in {
        "application/xml",
        "application/javascript",
        "application/x-ndjson",
    } or mtype.endswith("+xml")


def pairs_to_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Query/form pairs to a dict; a repeated key keeps every value, as a list."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            existing = out[key]
            if isinstance(existing, list):
                existing.append(value)
            else:
                out[key] = [existing, value]
        else:
            out[key] = value
    return out


def describe_body(
    body: bytes | None,
    content_type: str | None,
    *,
    max_bytes: int,
    redactor: Redactor,
    size: int | None = None,
    record_text: bool = False,
) -> Any:
    """Describe ``body`` for an event.

    Args:
        body: the raw bytes (may be the first ``max_bytes + 1`` bytes only).
        content_type: the ``Content-Type`` header value.
        max_bytes: bodies larger than this are not parsed.
        redactor: applied to parsed JSON and form data.
        size: the full size when ``body`` holds only a prefix.
        record_text: record text bodies (``text/*``, XML, ndjson) decoded. Off by
            default: a key regex cannot find a password in a SOAP envelope or a
            CSRF token in an HTML page, so text is kept by type and size only.

    Returns:
        ``None`` for no body; parsed JSON or form data (redacted); decoded text
        (with ``record_text``);
        or a dict describing what was not recorded (``content_type``, ``size``,
        and ``truncated``, ``invalid_json`` or ``encoding_error``).
    """
    if not body:
        return None
    total = size if size is not None else len(body)
    mtype = media_type(content_type)
    truncated = total > max_bytes
    if is_text(mtype) and not record_text:
        return {"content_type": mtype, "size": total}
    if truncated and not is_text(mtype):
        return {"content_type": mtype, "size": total, "truncated": True}
    if is_json(mtype):
        try:
            return redactor.redact_parsed(orjson.loads(body),
                                          body if type(body) is bytes else None)
        except orjson.JSONDecodeError:
            # Unparseable text can hide secrets under no key: keep type and size only.
            return {"content_type": mtype, "size": total, "invalid_json": True}
    if mtype == "application/x-www-form-urlencoded":
        try:
            text = body.decode(_charset(content_type))
        except (UnicodeDecodeError, LookupError):
            return {"content_type": mtype, "size": total, "encoding_error": True}
        pairs = parse_qsl(text, keep_blank_values=True)
        return pairs_to_dict(redactor.redact_pairs(pairs))
    if is_text(mtype):
        chunk = body[:max_bytes]
        try:
            text = chunk.decode(_charset(content_type))
        except UnicodeDecodeError as exc:
            if truncated and exc.start >= len(chunk) - 3:
                # The cap cut a multi-byte character in half.
                text = chunk[: exc.start].decode(_charset(content_type))
            else:
                return {"content_type": mtype, "size": total, "encoding_error": True}
        except LookupError:
            return {"content_type": mtype, "size": total, "encoding_error": True}
        if truncated:
            return {"content_type": mtype, "size": total, "truncated": True, "text": text}
        return text
    return {"content_type": mtype or None, "size": total}


def describe_multipart(
    fields: list[tuple[str, Any]],
    files: list[tuple[str, str | None, int | None, str | None]],
    redactor: Redactor,
) -> dict[str, Any]:
    """A multipart body: field values (redacted) and, for files, only metadata.

    Args:
        fields: ``(name, value)`` pairs of the non-file parts.
        files: ``(field name, file name, size, content type)`` per file part.
    """
    return {
        "content_type": "multipart/form-data",
        "fields": pairs_to_dict(redactor.redact_pairs(fields)),
        "files": [
            {"field": field, "name": name, "size": size, "content_type": ctype}
            for field, name, size, ctype in files
        ],
    }
