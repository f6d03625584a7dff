"""What every router shares: documented problem responses and cursor parsing helpers."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from api.pagination import decode
from api.schemas.common import Problem
from registry.errors import InvalidInput

PROBLEM: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}
_P = PROBLEM
READ_ERRORS: dict[int | str, dict[str, Any]] = {401: _P, 403: _P, 404: _P, 422: _P}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {401: _P, 403: _P, 404: _P, 409: _P, 422: _P, 503: _P}


def uuid_cursor(cursor: str | None) -> UUID | None:
    value = decode(cursor)
    if value is None:
        return None
    try:
        return UUID(str(value))
    except ValueError as exc:
        raise InvalidInput("cursor", "not a cursor this API returned") from exc


def pair_cursor(cursor: str | None) -> tuple[int, int] | None:
    value = decode(cursor)
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        raise InvalidInput("cursor", "not a cursor this API returned")
    return (value[0], value[1])
