"""Opaque keyset cursors: `?limit=&cursor=` -> `{"items": [...], "next_cursor": ...}`.

A cursor is base64url of compact JSON. The API only ever makes three shapes: an id (a non-negative
integer), a string (a UUID or a code) and a pair of integers; a cursor is decoded into exactly one of
them by the typed decoder its endpoint uses, and anything else (`true`, which Python counts as an int, a float, an
object, a nested list, a number past bigint) is the same 422, never a query with a value it did not
expect."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from registry.errors import InvalidInput

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
Cursor = Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page.")]

_BIGINT_MAX = 2**63 - 1


def encode(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def _refused() -> InvalidInput:
    return InvalidInput("cursor", "not a cursor this API returned")


def _is_id(value: object) -> bool:
    return type(value) is int and 0 <= value <= _BIGINT_MAX  # type(): a bool is not an id


def decode(cursor: str | None) -> Any:
    """The JSON inside a cursor, if it has one of the shapes this API makes: an id, a string, or a list
    of two ids; else 422. Endpoints use the typed decoders below."""
    if cursor is None:
        return None
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        value = json.loads(raw)
    except (ValueError, binascii.Error, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _refused() from exc
    if _is_id(value) or (isinstance(value, str) and len(value) <= 100):
        return value
    if isinstance(value, list) and len(value) == 2 and all(_is_id(v) for v in value):
        return value
    raise _refused()


def int_cursor(cursor: str | None) -> int | None:
    """A cursor holding one row id (alerts, deliveries, valuations, instructions, unit history)."""
    value = decode(cursor)
    if value is None:
        return None
    if not _is_id(value):
        raise _refused()
    return int(value)


def uuid_cursor(cursor: str | None) -> UUID | None:
    """A cursor holding a UUID (parties, accounts, issuances, pledges)."""
    value = decode(cursor)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _refused()
    try:
        return UUID(value)
    except ValueError as exc:
        raise _refused() from exc


def text_cursor(cursor: str | None) -> str | None:
    """A cursor holding a text key (project types, by code)."""
    value = decode(cursor)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _refused()
    return value


def pair_cursor(cursor: str | None) -> tuple[int, int] | None:
    """A cursor holding two ids (holdings: credit type and first serial)."""
    value = decode(cursor)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _refused()
    return (value[0], value[1])


def next_cursor(items: list[Any], limit: int, key: Any) -> str | None:
    return encode(key(items[-1])) if len(items) == limit else None
