"""The OpenAPI document banks generate their clients from (/openapi.json).

FastAPI writes most of it; this finishes it where FastAPI cannot be told:
- every error response is `application/problem+json` with the `Problem` schema, as api/problems.py sends
  it (FastAPI would put the schema under `application/json` and document its own `HTTPValidationError`
  for 422), with the headers that status carries;
- the tags, in order, with what each holds;
- an operation id for the few operations declared outside the routers (the routers name theirs in their
  decorators). Operation ids become the method names of every generated client: they are chosen by hand,
  and tests/test_openapi.py holds the list, so that renaming one is a deliberate act.

Routers say which error statuses an operation can answer with `errors(...)`; how each status is
documented is said here, once."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from api.auth import BEARER, BEARER_SCHEME, needs_key
from api.problems import PROBLEM_JSON
from api.schemas.common import Problem
from api.schemas.valuation import AlertEvent

TAGS: list[dict[str, str]] = [
    {"name": "reference", "description": "Parties, registry accounts and credit types (the exchange keeps them)."},
    {"name": "ledger", "description": "Issuances, transfers, retirements and an account's holdings."},
    {"name": "pledges", "description": "Pledges and their instructions: the joint application, consent, the "
                                       "exchange's confirmation, top-ups, releases and disposals."},
    {"name": "certificates", "description": "Pledge certificates (PDF) and their public verification."},
    {"name": "valuation", "description": "Trade prices, reference prices and the pledges' valuations."},
    {"name": "alerts", "description": "Margin, maturity and stale-price alerts, and the banks' webhooks."},
    {"name": "reports", "description": "A bank's collateral book and the exchange's statistics."},
    {"name": "audit", "description": "A unit's history and the verification of the hash chains."},
    {"name": "operations", "description": "Liveness and readiness (no key; keep off the public network)."},
]  # fmt: skip

# Operations declared without an operation id of their own (api/app.py, the operator's endpoints): their
# hand-chosen ids, given here when the document has them.
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "check_health",
    ("GET", "/readyz"): "check_readiness",
    ("GET", "/metrics"): "get_metrics",
}

_RETRY_AFTER = {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}

# status -> (what it means, with its codes; the headers it carries)
ERRORS: dict[int, tuple[str, dict[str, Any]]] = {
    401: (
        "`unauthenticated`: no API key, or a key that is not valid",
        {
            "WWW-Authenticate": {
                "description": 'always `Bearer realm="registry"`',
                "schema": {"type": "string"},
            }
        },
    ),
    403: ("`forbidden`: your role may not do this", {}),
    404: (
        "`not_found`: unknown, or another tenant's (`resource`, `id` and `field` say which)",
        {},
    ),
    409: (
        "a conflict with the registry's state: `insufficient_units`, `invalid_state`, `already_exists`, "
        "`loan_already_pledged`, `collateral_insufficient` or `idempotency_key_reused`",
        {},
    ),
    413: ("`too_large`: the request body is over the size limit; nothing of it was read", {}),
    422: (
        "`validation_error` (`errors[]` names each field of a malformed request; `field` the one a "
        "well-formed request got wrong) or `pledge_rate_exceeded`",
        {},
    ),
    429: (
        "`rate_limited`: too many failed attempts; wait `Retry-After` seconds",
        {"Retry-After": _RETRY_AFTER},
    ),
    503: (
        "`busy`: a lock or the database was not available in time; nothing changed, retry after "
        "`Retry-After` seconds",
        {"Retry-After": _RETRY_AFTER},
    ),
}

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# What FastAPI documents for its own 422, which the registry never sends.
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def errors(*statuses: int, described: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: the error statuses it can answer, each a Problem (`described` words one
    for this route)."""
    told = described or {}
    return {s: {"model": Problem, "description": told.get(s, ERRORS[s][0])} for s in statuses}


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """Everything this module says of the document FastAPI wrote; in place, and returned."""
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            named = OPERATION_IDS.get((method.upper(), path))
            if named is not None:
                operation["operationId"] = named
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    _as_problem(int(status), response)
                else:
                    _untitled(response)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    _webhook(document, schemas)
    document["tags"] = TAGS
    return document


def _webhook(document: dict[str, Any], schemas: dict[str, Any]) -> None:
    """What the registry POSTs to a bank's webhook (registry/alert), for the bank's receiving code."""
    event = AlertEvent.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
    for name, schema in event.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas["AlertEvent"] = event
    document["webhooks"] = {
        "alert": {
            "post": {
                "operationId": "receive_alert",
                "summary": "An alert raised or cleared, POSTed to the URL a bank set with `PUT /v1/webhook`",
                "tags": ["alerts"],
                "parameters": [
                    {"name": "X-Registry-Signature", "in": "header", "required": True,
                     "description": "`sha256=<hex HMAC-SHA256 of the exact body with your secret>`",
                     "schema": {"type": "string"}},
                    {"name": "X-Registry-Delivery", "in": "header", "required": True,
                     "description": "the delivery's id, the same on every retry: deduplicate on it",
                     "schema": {"type": "string"}},
                    {"name": "X-Registry-Event", "in": "header", "required": True,
                     "description": "`alert.raised` or `alert.cleared`, as in the body",
                     "schema": {"type": "string"}},
                ],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/AlertEvent"}}}},
                "responses": {"2XX": {"description": "received; anything else (or no answer in time) is retried"}},
            }
        }
    }  # fmt: skip


def _as_problem(status: int, response: dict[str, Any]) -> None:
    response["content"] = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}
    meaning, headers = ERRORS.get(status, ("a problem", {}))
    if response.get("description") in (None, "", "Validation Error", "Unprocessable Entity"):
        response["description"] = meaning
    if headers:
        response["headers"] = {**headers, **response.get("headers", {})}


def _untitled(response: dict[str, Any]) -> None:
    """An inline answer's schema without FastAPI's title (`Response Healthz Healthz Get`, from the function
    and the URL), so that a generated client names it after the operation id."""
    for media in response.get("content", {}).values():
        schema = media.get("schema", {})
        if "$ref" not in schema and str(schema.get("title", "")).startswith("Response "):
            del schema["title"]


def _secure(document: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    """The bearer key on every operation that takes one (api/auth.py: the key is no dependency of its own),
    named where FastAPI would put it: after the operation id."""
    keyed = {(context.path_format, method.lower()) for context in iter_route_contexts(app.routes)
             if isinstance(route := context.original_route, APIRoute) and needs_key(route)
             for method in route.methods or ()}  # fmt: skip
    for path, operations in document.get("paths", {}).items():
        for method, operation in list(operations.items()):
            if (path, method) in keyed:
                items = list(operation.items())
                at = next((i + 1 for i, (k, _) in enumerate(items) if k == "operationId"), len(items))
                operations[method] = dict([*items[:at], ("security", [{BEARER_SCHEME: []}]), *items[at:]])
    if keyed:
        document.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER_SCHEME] = BEARER
    return document


def install(app: FastAPI) -> None:
    """Serve the finished document at the app's `openapi_url` (and to /docs)."""
    write = app.openapi

    def openapi() -> dict[str, Any]:
        if not getattr(app.state, "openapi_finished", False):
            app.openapi_schema = _secure(finish(write()), app)
            app.state.openapi_finished = True
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to change the document
