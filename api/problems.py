"""The one place where errors become RFC 9457 problem+json responses.

Domain errors carry a stable `code`; this maps codes to statuses. Nothing else in the API decides
a status for an error, and no error reaches the client as a stack trace."""

from __future__ import annotations

import logging
from typing import Any

import psycopg.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.console.errors import SignInRequired, error_page, is_console, sign_in_first
from registry.errors import RegistryError

log = logging.getLogger("api.problems")

STATUS_BY_CODE = {
    "validation_error": 422,
    "pledge_rate_exceeded": 422,
    "collateral_insufficient": 409,
    "batch_refused": 409,
    "loan_already_pledged": 409,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "insufficient_units": 409,
    "invalid_state": 409,
    "already_exists": 409,
    "idempotency_key_reused": 409,
    "rate_limited": 429,
    "csrf_failed": 403,
    "busy": 503,
}

# Constraint names (see the migrations) that a racing request can still hit after the service's checks.
CONSTRAINT_CODES = {
    "uq_party_name": ("already_exists", "a party with this name exists"),
    "uq_party_credit_code": ("already_exists", "a party with this credit code exists"),
    "uq_credit_type_code": ("already_exists", "this credit type exists"),
    "uq_pledge_open_loan": ("loan_already_pledged", "this loan contract already has an open pledge"),
    "uq_instruction_one_open": ("invalid_state", "another instruction of this pledge is still waiting"),
}

PROBLEM_JSON = "application/problem+json"


_RESERVED = frozenset({"type", "title", "status", "detail", "code", "instance", "request_id"})


def problem(
    request: Request, status: int, code: str, title: str, detail: str, extra: dict[str, Any] | None = None
) -> Response:
    if is_console(request):  # a person at a browser: the same error as a page
        return error_page(request, status, title, detail)
    body: dict[str, Any] = {
        "type": f"https://registry.example/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
    }
    body.update({k: v for k, v in (extra or {}).items() if v is not None and k not in _RESERVED})
    headers = {"WWW-Authenticate": 'Bearer realm="registry"'} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "1"}
    if status == 429:
        headers = {"Retry-After": str((extra or {}).get("retry_after", 1))}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def of(request: Request, exc: RegistryError) -> Response:
    """The response for a domain error, for an endpoint that returns it instead of raising (so that its
    transaction still commits, e.g. to count a failed attempt)."""
    status = STATUS_BY_CODE.get(exc.code)
    if status is None:  # a code nobody mapped is a defect (tests/test_problems.py), not the caller's fault
        return _unexpected(request, exc)
    return problem(request, status, exc.code, exc.title, exc.detail, exc.context)


def _registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return of(request, exc)


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body",
            "message": err.get("msg", "invalid"),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return problem(request, 422, "validation_error", "Invalid request", detail, {"errors": errors})


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot even decode (not UTF-8): bad input like any other, so the
        # same documented 422 as malformed JSON.
        return problem(
            request,
            422,
            "validation_error",
            "Invalid request",
            "the body is not valid UTF-8 JSON",
            {"errors": [{"field": "body", "message": "not valid UTF-8 JSON", "type": "json_invalid"}]},
        )
    codes = {
        401: "unauthenticated",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
        415: "unsupported_media_type",
        429: "rate_limited",
    }
    code = codes.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    return problem(request, exc.status_code, code, code.replace("_", " ").capitalize(), detail)


def database_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DBAPIError)
    orig = exc.orig
    if exc.connection_invalidated or isinstance(orig, psycopg.OperationalError):
        return problem(
            request, 503, "busy", "Database unavailable", "the database connection was lost; retry"
        )
    if isinstance(
        orig,
        psycopg.errors.LockNotAvailable
        | psycopg.errors.DeadlockDetected
        | psycopg.errors.SerializationFailure
        | psycopg.errors.QueryCanceled,
    ):
        return problem(request, 503, "busy", "Busy, retry", "the registry is busy with the same units; retry")
    if isinstance(orig, psycopg.DataError):
        # A value PostgreSQL cannot take as it is (a NUL character in text, a number out of range) reached a
        # query: bad input, refused like any other, and the transaction rolled back.
        detail = "a value in the request cannot be stored as it is (e.g. a NUL character in text)"
        return problem(request, 422, "validation_error", "Invalid request", detail)
    if isinstance(exc, IntegrityError):
        name = getattr(getattr(orig, "diag", None), "constraint_name", None)
        if name in CONSTRAINT_CODES:
            code, detail = CONSTRAINT_CODES[name]
            return problem(request, STATUS_BY_CODE[code], code, "Conflict", detail)
    # exc_info=exc: a handler runs outside the except block, where log.exception would log no traceback.
    log.error(
        "database error", exc_info=exc, extra={"request_id": getattr(request.state, "request_id", None)}
    )
    return problem(request, 500, "internal_error", "Internal error", "the request could not be completed")


def _unexpected(request: Request, exc: Exception) -> Response:
    log.error(
        "unhandled error", exc_info=exc, extra={"request_id": getattr(request.state, "request_id", None)}
    )
    return problem(request, 500, "internal_error", "Internal error", "the request could not be completed")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RegistryError, _registry_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(SignInRequired, sign_in_first)
    app.add_exception_handler(Exception, _unexpected)
