"""The OpenAPI document is the contract clients are generated from (API.md, "Operations"): each operation
with its hand-chosen id and one tag, every error as application/problem+json with the Problem schema, and
no money as a JSON number. tests/test_generated_client.py drives a client generated from it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine

from api.app import create_app
from api.openapi import TAGS
from registry.config import Settings

# The operation ids, chosen once: they are every generated client's method names. Renaming one breaks
# every bank's integration code, so it fails here first, on purpose; adding an operation adds a line.
OPERATION_IDS = {
    ("POST", "/v1/parties"): "create_party",
    ("GET", "/v1/parties"): "list_parties",
    ("GET", "/v1/parties/lookup"): "lookup_party",
    ("GET", "/v1/parties/{party_id}"): "get_party",
    ("POST", "/v1/accounts"): "create_account",
    ("GET", "/v1/accounts"): "list_accounts",
    ("GET", "/v1/accounts/lookup"): "lookup_account",
    ("GET", "/v1/accounts/{account_id}"): "get_account",
    ("POST", "/v1/credit-types"): "create_credit_type",
    ("GET", "/v1/credit-types"): "list_credit_types",
    ("POST", "/v1/project-types"): "create_project_type",
    ("GET", "/v1/project-types"): "list_project_types",
    ("POST", "/v1/issuances"): "issue_credits",
    ("GET", "/v1/issuances"): "list_issuances",
    ("GET", "/v1/issuances/{issuance_id}"): "get_issuance",
    ("POST", "/v1/transfers"): "transfer_units",
    ("POST", "/v1/transfers/batch"): "settle_transfers",
    ("POST", "/v1/retirements"): "retire_units",
    ("GET", "/v1/accounts/{account_id}/holdings"): "get_holdings",
    ("POST", "/v1/pledges"): "create_pledge",
    ("GET", "/v1/pledges"): "list_pledges",
    ("GET", "/v1/pledges/{pledge_id}"): "get_pledge",
    ("POST", "/v1/pledges/{pledge_id}/instructions"): "request_instruction",
    ("GET", "/v1/instructions"): "list_instructions",
    ("GET", "/v1/instructions/{instruction_id}"): "get_instruction",
    ("POST", "/v1/instructions/{instruction_id}/consent"): "consent_to_instruction",
    ("POST", "/v1/instructions/{instruction_id}/decline"): "decline_instruction",
    ("POST", "/v1/instructions/{instruction_id}/confirm"): "confirm_instruction",
    ("POST", "/v1/instructions/{instruction_id}/reject"): "reject_instruction",
    ("POST", "/v1/instructions/{instruction_id}/cancel"): "cancel_instruction",
    ("GET", "/v1/pledges/{pledge_id}/certificate"): "download_certificate",
    ("GET", "/v1/pledges/{pledge_id}/certificates"): "list_certificates",
    ("GET", "/v1/certificates/{number}/verify"): "verify_certificate",
    ("POST", "/v1/prices/trades"): "load_trades",
    ("GET", "/v1/prices/{credit_type}"): "get_prices",
    ("GET", "/v1/pledges/{pledge_id}/valuations"): "list_valuations",
    ("GET", "/v1/alerts"): "list_alerts",
    ("POST", "/v1/alerts/{alert_id}/ack"): "acknowledge_alert",
    ("PUT", "/v1/webhook"): "set_webhook",
    ("GET", "/v1/webhook"): "get_webhook",
    ("GET", "/v1/webhook/deliveries"): "list_webhook_deliveries",
    ("GET", "/v1/reports/collateral-book"): "get_collateral_book",
    ("GET", "/v1/reports/exchange"): "get_exchange_stats",
    ("GET", "/v1/units/{credit_type}/{serial}/history"): "get_unit_history",
    ("GET", "/v1/audit/verify"): "verify_audit_trail",
    ("GET", "/healthz"): "check_health",
    ("GET", "/readyz"): "check_readiness",
    ("GET", "/metrics"): "get_metrics",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings = Settings(database_url="postgresql://unused/unused", scheduler_enabled=False,
                        certificate_workers=0, report_workers=0)  # fmt: skip
    unused = create_engine("postgresql+psycopg://unused@/unused")  # never connected: the document only
    app = create_app(settings, engine=unused)
    doc: dict[str, Any] = app.openapi()
    return doc


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def test_every_operation_has_its_hand_chosen_id(document: dict[str, Any]) -> None:
    found = {(m, p): op.get("operationId") for m, p, op in operations(document)}
    assert found == OPERATION_IDS
    ids = list(found.values())
    assert len(ids) == len(set(ids)), "operation ids are unique"
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)+", i) for i in ids), "verb_noun, snake case"


def test_every_operation_has_one_declared_tag(document: dict[str, Any]) -> None:
    declared = [t["name"] for t in document["tags"]]
    assert declared == [t["name"] for t in TAGS]
    used = set()
    for method, path, operation in operations(document):
        assert len(operation.get("tags", [])) == 1, f"{method} {path}: {operation.get('tags')}"
        assert operation["tags"][0] in declared, f"{method} {path}"
        used.add(operation["tags"][0])
    assert used == set(declared), "no tag without an operation"


def test_every_error_is_problem_json_with_its_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "Problem" in schemas and "FieldError" in schemas
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["Problem"]["properties"]["errors"]["anyOf"][0]["items"] == {
        "$ref": "#/components/schemas/FieldError"
    }
    for method, path, operation in operations(document):
        where = f"{method} {path}"
        responses = operation["responses"]
        for status, response in responses.items():
            if int(status) < 400:
                continue
            assert response["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, f"{where} {status}"
            assert response["description"], f"{where} {status}"
        headers = {s: set(r.get("headers", {})) for s, r in responses.items()}
        assert headers.get("401", {"WWW-Authenticate"}) == {"WWW-Authenticate"}, where
        for status in ("429", "503"):
            assert headers.get(status, {"Retry-After"}) == {"Retry-After"}, f"{where} {status}"


def test_each_operation_documents_what_it_can_answer(document: dict[str, Any]) -> None:
    """The rules of api/routers/common.py: 401 for a key, 503 for the database, 413 for a body, 422 for
    input. (The fuzz, tests/test_api_fuzz.py, fails on any status or content type answered and not
    documented.)"""
    for method, path, operation in operations(document):
        where, statuses = f"{method} {path}", set(operation["responses"])
        public = not path.startswith("/v1/") or path == "/v1/certificates/{number}/verify"  # no API key
        assert ("401" in statuses) == (not public), where
        assert ("413" in statuses) == ("requestBody" in operation), where
        if operation.get("parameters") or "requestBody" in operation:
            assert "422" in statuses, where
        else:
            assert "422" not in statuses, where
        if path.startswith("/v1/"):
            assert "503" in statuses, where
        assert "500" not in statuses and "default" not in statuses, where


# A property is money-like by its words: a price, an amount of CNY, a ratio or a rate (not its date).
MONEY_WORDS = {"price", "proceeds", "principal", "value", "financing", "ratio", "rate", "haircut", "vwap",
               "close", "lower", "amount"}  # fmt: skip
NOT_MONEY = {"date", "at", "id", "method", "kind"}


def money_like(name: str) -> bool:
    words = name.lower().split("_")
    return bool(MONEY_WORDS & set(words)) and words[-1] not in NOT_MONEY


def branches(schema: dict[str, Any], schemas: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The schema's alternatives, references followed."""
    if "$ref" in schema:
        yield from branches(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas)
    elif any(k in schema for k in ("anyOf", "oneOf", "allOf")):
        for key in ("anyOf", "oneOf", "allOf"):
            for alternative in schema.get(key, []):
                yield from branches(alternative, schemas)
    else:
        yield schema


def test_no_money_is_a_json_number(document: dict[str, Any]) -> None:
    """Every money-like field, in requests and responses, is a decimal string with a pattern: never a
    number (a client's float has already rounded it), in any branch."""
    schemas = document["components"]["schemas"]
    fields: list[tuple[str, str, dict[str, Any]]] = []  # where, name, schema
    for name, schema in schemas.items():
        for prop, sub in schema.get("properties", {}).items():
            fields.append((f"{name}.{prop}", prop, sub))
    for method, path, operation in operations(document):
        for parameter in operation.get("parameters", []):
            fields.append((f"{method} {path} ?{parameter['name']}", parameter["name"], parameter["schema"]))
    checked = 0
    for where, name, schema in fields:
        if not money_like(name):
            continue
        for branch in branches(schema, schemas):
            if branch.get("type") == "null":
                continue
            assert branch.get("type") == "string" and "pattern" in branch, f"{where}: {branch}"
            checked += 1
    assert checked >= 40, f"only {checked} money-like fields: is the walk still finding them?"
    assert money_like("coverage_ratio") and money_like("collateral_value") and money_like("last_close")
    assert not money_like("price_date") and not money_like("last_close_date") and not money_like("volume")


def test_every_list_is_a_page(document: dict[str, Any]) -> None:
    """`?limit=&cursor=` -> `{items, next_cursor}` (API.md "Conventions"): no bare array answers."""
    for method, path, operation in operations(document):
        ok = operation["responses"].get("200", {}).get("content", {}).get("application/json")
        if method != "GET" or ok is None:
            continue
        schema = ok["schema"]
        assert schema.get("type") != "array", f"{method} {path} answers a bare array"
        names = {p["name"] for p in operation.get("parameters", [])}
        ref = schema.get("$ref", "").rsplit("/", 1)[-1]
        if "items" in document["components"]["schemas"].get(ref, {}).get("properties", {}):
            assert {"limit", "cursor"} <= names, f"{method} {path}: a list without ?limit=&cursor="
            assert "next_cursor" in document["components"]["schemas"][ref]["properties"], path


def test_the_webhook_payload_is_documented(document: dict[str, Any]) -> None:
    """What a bank's endpoint receives (OpenAPI `webhooks`), its money as decimal strings like the rest."""
    post = document["webhooks"]["alert"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AlertEvent"
    }
    assert {p["name"] for p in post["parameters"]} == {
        "X-Registry-Signature", "X-Registry-Delivery", "X-Registry-Event"}  # fmt: skip
    details = document["components"]["schemas"]["AlertEvent"]["properties"]["details"]
    assert details == {"$ref": "#/components/schemas/AlertDetails"}


def test_every_operation_that_takes_a_key_says_so(document: dict[str, Any]) -> None:
    """Generated clients send the key where the document asks for it. The key is read by ApiKeyMiddleware,
    not by a dependency FastAPI would document by itself: api/openapi.py declares it, from the same rule
    that decides which routes take one (`needs_key`)."""
    assert document["components"]["securitySchemes"] == {
        "HTTPBearer": {
            "type": "http",
            "description": "An API key made by `registry keys create`.",
            "scheme": "bearer",
        }
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            public = not path.startswith("/v1/") or path == "/v1/certificates/{number}/verify"
            assert operation.get("security") == (None if public else [{"HTTPBearer": []}]), f"{method} {path}"
