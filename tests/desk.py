"""A pledge desk for HTTP tests: parties, keys and the calls every pledge flow makes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from registry.ledger.models import PartyKind
from registry.principal import Role
from tests import factories as f


@dataclass
class Desk:
    """A pledgor with 10,000 CCER, a borrower, two banks and two exchange operators."""

    op1: dict[str, str]
    op2: dict[str, str]
    bank: dict[str, str]
    other_bank: dict[str, str]
    holder: dict[str, str]  # the borrower
    pledgor: dict[str, str]
    account: str
    borrower: str
    bank_account: str
    serial: int


def make_desk(session: Session) -> Desk:
    exchange = f.party(session, PartyKind.EXCHANGE)
    bank, other_bank = f.party(session, PartyKind.BANK), f.party(session, PartyKind.BANK)
    pledgor, borrower = f.party(session), f.party(session)
    account = f.account(session, pledgor)
    bank_account = f.account(session, bank)
    batch = f.issue(session, account.id, 10_000)
    return Desk(
        op1=f.auth(f.key(session, exchange, Role.EXCHANGE, operator="张三")),
        op2=f.auth(f.key(session, exchange, Role.EXCHANGE, operator="李四")),
        bank=f.auth(f.key(session, bank, Role.BANK)),
        other_bank=f.auth(f.key(session, other_bank, Role.BANK)),
        holder=f.auth(f.key(session, borrower, Role.HOLDER)),
        pledgor=f.auth(f.key(session, pledgor, Role.HOLDER)),
        account=str(account.id),
        borrower=str(borrower.id),
        bank_account=str(bank_account.id),
        serial=batch.serial_start,
    )


def units(client: TestClient, desk: Desk) -> dict[str, int]:
    totals = client.get(f"/v1/accounts/{desk.account}/holdings", headers=desk.op1).json()["totals"]
    return {t["status"]: t["quantity"] for t in totals}


def register(
    client: TestClient,
    desk: Desk,
    quantity: int = 4000,
    *,
    consent: bool = True,
    consenter: dict[str, str] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The bank asks; unless told otherwise, the pledgor (or `consenter`) consents, so that the request is
    in the queue."""
    response = client.post(
        "/v1/pledges",
        headers=desk.bank,
        json=f.pledge_body(desk.account, desk.borrower, quantity, **overrides),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    if consent:
        agreed = client.post(
            f"/v1/instructions/{body['instructions'][0]['id']}/consent", headers=consenter or desk.pledgor
        )
        assert agreed.status_code == 200, agreed.text
        body = client.get(f"/v1/pledges/{body['id']}", headers=desk.bank).json()
    return body


def ask(client: TestClient, desk: Desk, pledge: dict[str, Any], **body: Any) -> dict[str, Any]:
    """The bank asks; a top-up is then consented by the pledgor, so that it waits for the exchange."""
    response = client.post(f"/v1/pledges/{pledge['id']}/instructions", headers=desk.bank, json=body)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    if made["status"] == "awaiting_consent":
        agreed = client.post(f"/v1/instructions/{made['id']}/consent", headers=desk.pledgor)
        assert agreed.status_code == 200, agreed.text
        made = agreed.json()
    return made


def confirm(client: TestClient, headers: dict[str, str], instruction: dict[str, Any], **body: Any) -> Any:
    return client.post(f"/v1/instructions/{instruction['id']}/confirm", headers=headers, json=body or None)


def pledge_of(client: TestClient, desk: Desk, pledge: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/pledges/{pledge['id']}", headers=desk.bank).json()
    return body
