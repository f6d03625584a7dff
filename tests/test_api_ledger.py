"""The ledger through the HTTP API, as the exchange's back office and the banks use it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from registry.ledger.models import PartyKind
from registry.ledger.uscc import make
from registry.principal import Role
from tests import factories as f


def snapshot(session: Session) -> tuple[Any, ...]:
    """Everything a request could change; equal before and after means it changed nothing."""
    return tuple(
        session.execute(
            text("""
        SELECT (SELECT count(*) FROM party), (SELECT count(*) FROM account), (SELECT count(*) FROM issuance),
               (SELECT count(*) FROM holding), (SELECT string_agg(id || ':' || serial_start || '-' || serial_end
                                                   || status, ',' ORDER BY id) FROM holding),
               (SELECT count(*) FROM audit_event), (SELECT count(*) FROM idempotency_record),
               (SELECT string_agg(code || next_serial, ',') FROM credit_type)""")
        ).one()
    )


@pytest.fixture
def exchange(session: Session) -> dict[str, str]:
    return f.auth(f.key(session, f.party(session, PartyKind.EXCHANGE), Role.EXCHANGE, operator="op-1"))


def test_back_office_day(client: TestClient, exchange: dict[str, str]) -> None:
    """Parties, accounts, an issuance, trades settled as transfers, a retirement, holdings, a unit's history."""
    seller = client.post(
        "/v1/parties",
        headers=exchange,
        json={
            "name": "川西水电开发有限公司 Hydro",
            "kind": "enterprise",
            "credit_code": make("91513300MA6K1L2M3"),
        },
    ).json()
    buyer = client.post(
        "/v1/parties", headers=exchange, json={"name": "Buyer Co", "kind": "enterprise"}
    ).json()
    a = client.post("/v1/accounts", headers=exchange, json={"party_id": seller["id"]}).json()
    b = client.post("/v1/accounts", headers=exchange, json={"party_id": buyer["id"]}).json()
    assert a["number"].startswith("RA") and a["status"] == "active"

    batch = client.post(
        "/v1/issuances",
        headers=exchange,
        json={
            "credit_type": "CCER",
            "project_code": "CCER-01-2024-0107",
            "project_type": "hydropower",
            "vintage": 2024,
            "quantity": 120000,
            "account_id": a["id"],
        },
    )
    assert batch.status_code == 201, batch.text
    s = batch.json()["serial_start"]
    assert batch.json()["serial_end"] == s + 119999

    t = client.post(
        "/v1/transfers",
        headers=exchange,
        json={"from_account_id": a["id"], "to_account_id": b["id"], "credit_type": "CCER", "quantity": 20000},
    )
    assert t.status_code == 201
    assert t.json()["blocks"] == [
        {
            "credit_type": "CCER",
            "batch_id": batch.json()["id"],
            "serial_start": s,
            "serial_end": s + 19999,
            "quantity": 20000,
        }
    ]
    r = client.post(
        "/v1/retirements",
        headers=exchange,
        json={
            "account_id": b["id"],
            "blocks": [{"credit_type": "CCER", "serial_start": s + 100, "serial_end": s + 199}],
            "reason": "2025 offset",
        },
    )
    assert r.status_code == 201 and r.json()["quantity"] == 100

    holdings = client.get(f"/v1/accounts/{b['id']}/holdings", headers=exchange).json()
    assert [(h["serial_start"], h["serial_end"], h["status"]) for h in holdings["items"]] == [
        (s, s + 99, "available"),
        (s + 100, s + 199, "retired"),
        (s + 200, s + 19999, "available"),
    ]
    assert {(t["status"], t["quantity"]) for t in holdings["totals"]} == {
        ("available", 19900),
        ("retired", 100),
    }
    assert (
        holdings["items"][0]["project_code"] == "CCER-01-2024-0107"
        and holdings["items"][0]["vintage"] == 2024
    )

    history = client.get(f"/v1/units/CCER/{s + 150}/history", headers=exchange).json()
    assert [e["kind"] for e in history["items"]] == ["issue", "transfer", "retire"]
    assert history["items"][1]["before"]["account_number"] == a["number"]
    assert history["items"][1]["after"]["account_number"] == b["number"]
    assert history["items"][2]["after"]["status"] == "retired"
    assert history["items"][2]["reason"] == "2025 offset" and history["items"][2]["operator"] == "op-1"


def test_holdings_are_paginated(client: TestClient, session: Session, exchange: dict[str, str]) -> None:
    a = f.account(session)
    for _ in range(5):
        f.issue(session, a.id, 10)
    seen, cursor = [], None
    while True:
        page = client.get(
            f"/v1/accounts/{a.id}/holdings",
            headers=exchange,
            params={"limit": 2, **({"cursor": cursor} if cursor else {})},
        ).json()
        seen += [h["serial_start"] for h in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen)


def test_new_credit_type_is_data(client: TestClient, exchange: dict[str, str], session: Session) -> None:
    created = client.post(
        "/v1/credit-types", headers=exchange, json={"code": "CEA", "name": "全国碳排放配额"}
    )
    assert created.status_code == 201 and created.json()["serials_issued"] == 0
    a = f.account(session)
    batch = client.post(
        "/v1/issuances",
        headers=exchange,
        json={
            "credit_type": "CEA",
            "project_code": "CEA-2025",
            "project_type": "allowance",
            "vintage": 2025,
            "quantity": 5000,
            "account_id": str(a.id),
        },
    )
    assert batch.status_code == 201 and batch.json()["serial_start"] == 1
    again = client.post("/v1/credit-types", headers=exchange, json={"code": "CEA", "name": "dup"})
    assert again.status_code == 409 and again.json()["code"] == "already_exists"


class TestIdempotency:
    def test_a_retry_returns_the_first_response_and_changes_nothing(
        self, client: TestClient, session: Session, exchange: dict[str, str]
    ) -> None:
        a, b = f.account(session), f.account(session)
        f.issue(session, a.id, 100)
        body = {
            "from_account_id": str(a.id),
            "to_account_id": str(b.id),
            "credit_type": "CCER",
            "quantity": 10,
        }
        headers = {**exchange, "Idempotency-Key": "retry-1"}
        first = client.post("/v1/transfers", headers=headers, json=body)
        before = snapshot(session)
        second = client.post("/v1/transfers", headers=headers, json=body)
        assert second.status_code == first.status_code == 201
        assert second.content == first.content and second.headers["Idempotent-Replayed"] == "true"
        assert snapshot(session) == before

    def test_the_same_key_with_another_body_is_refused(
        self, client: TestClient, session: Session, exchange: dict[str, str]
    ) -> None:
        a, b = f.account(session), f.account(session)
        f.issue(session, a.id, 100)
        body = {
            "from_account_id": str(a.id),
            "to_account_id": str(b.id),
            "credit_type": "CCER",
            "quantity": 10,
        }
        headers = {**exchange, "Idempotency-Key": "retry-2"}
        assert client.post("/v1/transfers", headers=headers, json=body).status_code == 201
        before = snapshot(session)
        reused = client.post("/v1/transfers", headers=headers, json={**body, "quantity": 11})
        assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
        assert snapshot(session) == before


BAD_TRANSFERS: list[tuple[str, Any, int, str]] = [
    ("malformed JSON", b'{"from_account_id": ', 422, "validation_error"),
    ("not UTF-8", b"\xff\xfe{\x1c", 422, "validation_error"),
    ("not an object", b"[1, 2]", 422, "validation_error"),
    ("zero quantity", {"credit_type": "CCER", "quantity": 0}, 422, "quantity"),
    ("negative quantity", {"credit_type": "CCER", "quantity": -5}, 422, "quantity"),
    ("huge quantity", {"credit_type": "CCER", "quantity": 10**30}, 422, "quantity"),
    ("quantity as float", {"credit_type": "CCER", "quantity": 1.5}, 422, "quantity"),
    ("quantity as text", {"credit_type": "CCER", "quantity": "ten"}, 422, "quantity"),
    ("no credit type", {"quantity": 5}, 422, "credit_type"),
    (
        "both quantity and blocks",
        {
            "credit_type": "CCER",
            "quantity": 5,
            "blocks": [{"credit_type": "CCER", "serial_start": 1, "serial_end": 2}],
        },
        422,
        "",
    ),
    (
        "reversed block",
        {"blocks": [{"credit_type": "CCER", "serial_start": 9, "serial_end": 2}]},
        422,
        "blocks",
    ),
    (
        "serial beyond the space",
        {"blocks": [{"credit_type": "CCER", "serial_start": 1, "serial_end": 2**41}]},
        422,
        "serial_end",
    ),
    ("unknown credit type", {"credit_type": "NOPE", "quantity": 5}, 404, "not_found"),
    ("unknown field", {"credit_type": "CCER", "quantity": 5, "memo": "x"}, 422, "memo"),
    ("more than available", {"credit_type": "CCER", "quantity": 101}, 409, "insufficient_units"),
    (
        "blocks not held",
        {"blocks": [{"credit_type": "CCER", "serial_start": 1, "serial_end": 10**9}]},
        409,
        "insufficient_units",
    ),
]


@pytest.mark.parametrize(
    ("case", "payload", "status", "mentions"), BAD_TRANSFERS, ids=[c[0] for c in BAD_TRANSFERS]
)
def test_bad_transfers_are_4xx_problems_and_change_nothing(
    client: TestClient,
    session: Session,
    exchange: dict[str, str],
    case: str,
    payload: Any,
    status: int,
    mentions: str,
) -> None:
    a, b = f.account(session), f.account(session)
    f.issue(session, a.id, 100)
    before = snapshot(session)
    headers = {**exchange, "Content-Type": "application/json", "Idempotency-Key": f"bad-{case}"}
    if isinstance(payload, dict):
        payload = {"from_account_id": str(a.id), "to_account_id": str(b.id), **payload}
        import json

        payload = json.dumps(payload).encode()
    response = client.post("/v1/transfers", headers=headers, content=payload)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {"type", "title", "status", "detail", "code"} <= problem.keys() and problem["status"] == status
    assert mentions in response.text
    assert snapshot(session) == before


BAD_REFERENCES = [
    (
        "/v1/transfers",
        {"from_account_id": "UNKNOWN", "to_account_id": "OTHER", "credit_type": "CCER", "quantity": 1},
    ),
    ("/v1/retirements", {"account_id": "UNKNOWN", "credit_type": "CCER", "quantity": 1}),
    (
        "/v1/issuances",
        {
            "credit_type": "CCER",
            "project_code": "P",
            "project_type": "t",
            "vintage": 2024,
            "quantity": 1,
            "account_id": "UNKNOWN",
        },
    ),
    ("/v1/accounts", {"party_id": "UNKNOWN"}),
]


@pytest.mark.parametrize(("path", "body"), BAD_REFERENCES, ids=[p for p, _ in BAD_REFERENCES])
def test_unknown_ids_are_404_and_change_nothing(
    client: TestClient, session: Session, exchange: dict[str, str], path: str, body: dict[str, Any]
) -> None:
    a = f.account(session)
    f.issue(session, a.id, 10)
    before = snapshot(session)
    filled = {
        k: (str(uuid.uuid4()) if v == "UNKNOWN" else str(a.id) if v == "OTHER" else v)
        for k, v in body.items()
    }
    response = client.post(path, headers=exchange, json=filled)
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert snapshot(session) == before


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "kind": "bank"},
        {"name": "x" * 201, "kind": "bank"},
        {"name": "ok", "kind": "dragon"},
        {"name": "nul\u0000byte", "kind": "bank"},
        {"name": "ok", "kind": "bank", "credit_code": "123"},
        {"name": "bad check", "kind": "bank", "credit_code": "91510100MA62A1B2CX"},
    ],
    ids=["empty", "long", "kind", "nul", "code-format", "code-check"],
)
def test_bad_parties_are_refused(
    client: TestClient, session: Session, exchange: dict[str, str], body: dict[str, Any]
) -> None:
    before = snapshot(session)
    response = client.post("/v1/parties", headers=exchange, json=body)
    assert response.status_code == 422, response.text
    assert snapshot(session) == before


def test_bad_paths_and_queries(client: TestClient, exchange: dict[str, str]) -> None:
    assert client.get("/v1/accounts/not-a-uuid/holdings", headers=exchange).status_code == 422
    assert client.get("/v1/units/CCER/0/history", headers=exchange).status_code == 422
    assert client.get("/v1/units/ccer!/1/history", headers=exchange).status_code == 422
    assert client.get("/v1/accounts", headers=exchange, params={"limit": 0}).status_code == 422
    assert client.get("/v1/accounts", headers=exchange, params={"cursor": "%%%"}).status_code == 422
    assert client.get("/v1/nowhere", headers=exchange).json()["code"] == "not_found"
    wrong_method = client.delete("/v1/accounts", headers=exchange)
    assert (
        wrong_method.status_code == 405 and wrong_method.headers["content-type"] == "application/problem+json"
    )


def test_missing_or_wrong_keys_are_401(client: TestClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer rk_000000000000_" + "x" * 43},
    ):
        response = client.get("/v1/accounts", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["code"] == "unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_every_response_carries_a_request_id(client: TestClient, exchange: dict[str, str]) -> None:
    echoed = client.get("/v1/credit-types", headers={**exchange, "X-Request-ID": "bank-req-42"})
    assert echoed.headers["x-request-id"] == "bank-req-42"
    assert {ct["code"] for ct in echoed.json()["items"]} >= {"CCER", "CDCER"}
    made = client.get("/v1/credit-types", headers=exchange)
    assert len(made.headers["x-request-id"]) == 32
