"""What every router shares: documented problem responses, and the cursor decoders (api/pagination.py)."""

from __future__ import annotations

from typing import Any

from api.pagination import int_cursor, pair_cursor, uuid_cursor
from api.schemas.common import Problem

__all__ = ["PROBLEM", "READ_ERRORS", "WRITE_ERRORS", "int_cursor", "pair_cursor", "uuid_cursor"]

PROBLEM: dict[str, Any] = {"model": Problem, "content": {"application/problem+json": {}}}
_P = PROBLEM
READ_ERRORS: dict[int | str, dict[str, Any]] = {401: _P, 403: _P, 404: _P, 422: _P}
# 413: a body over the size limit (api/limits.py), refused before it is read to the end.
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _P, 403: _P, 404: _P, 409: _P, 413: _P, 422: _P, 503: _P
}  # fmt: skip
