"""Opaque keyset cursors: `?limit=&cursor=` -> `{"items": [...], "next_cursor": ...}`."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import Query

from registry.errors import InvalidInput

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
Cursor = Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page.")]


def encode(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(cursor: str | None) -> Any:
    if cursor is None:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor", "not a cursor this API returned") from exc


def next_cursor(items: list[Any], limit: int, key: Any) -> str | None:
    return encode(key(items[-1])) if len(items) == limit else None
