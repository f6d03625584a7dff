"""What every router shares: the documented error statuses (`errors(...)`, api/openapi.py), and the cursor
decoders (api/pagination.py).

Each operation names the statuses it can answer: 401 for every keyed one (ApiKeyMiddleware), 503 for
every one that reaches the database (a lock or a connection not to be had), 403 where a role is checked,
404 where an id is looked up, 409 for state and for `Idempotency-Key`, 413 where there is a body, 422
where there is input, 429 where attempts are counted."""

from __future__ import annotations

from typing import Any

from api.openapi import errors
from api.pagination import int_cursor, pair_cursor, text_cursor, uuid_cursor
from api.schemas.common import Problem

__all__ = [
    "PROBLEM",
    "READ_ERRORS",
    "WRITE_ERRORS",
    "errors",
    "int_cursor",
    "pair_cursor",
    "text_cursor",
    "uuid_cursor",
]

# One problem response, for a route that words its own (`{**PROBLEM, "description": ...}`); api/openapi.py
# documents it as application/problem+json like every error. Prefer `errors(...)`.
PROBLEM: dict[str, Any] = {"model": Problem}

# The broad sets routers used before `errors(...)`, kept so that a route written against them still
# imports; prefer naming what the route answers (tests/test_openapi.py checks the rules above).
READ_ERRORS = errors(401, 403, 404, 422, 503)
WRITE_ERRORS = errors(401, 403, 404, 409, 413, 422, 503)
