"""The authorization matrix: every endpoint x every role x own / other tenant, one status code per cell.

A bank or a holder never sees another party's resources (404, so ids cannot be probed) and never uses
the exchange's endpoints (403). The exchange sees and keeps everything; the auditor reads everything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from registry.ledger.models import PartyKind
from registry.principal import Role
from tests import factories as f

ROLES = ["anonymous", "exchange", "auditor", "bank", "holder"]


@dataclass
class World:
    keys: dict[str, dict[str, str]]
    ids: dict[str, str]


@pytest.fixture
def world(session: Session) -> World:
    exchange = f.party(session, PartyKind.EXCHANGE)
    auditor = f.party(session, PartyKind.AUDITOR)
    bank = f.party(session, PartyKind.BANK)
    holder, other_holder = f.party(session), f.party(session)
    own_account = f.account(session, holder)
    bank_account = f.account(session, bank)
    other_account = f.account(session, other_holder)
    batch = f.issue(session, own_account.id, 100)
    f.issue(session, other_account.id, 100)
    own_active = _pledge(session, bank, own_account.id, holder.id, confirm=True)
    own_pending = _pledge(session, bank, own_account.id, holder.id, confirm=False)
    other_bank = f.party(session, PartyKind.BANK)
    other_pending = _pledge(session, other_bank, other_account.id, other_holder.id, confirm=False)
    other_active = _pledge(session, other_bank, other_account.id, other_holder.id, confirm=True)
    own_awaiting = _pledge(session, bank, own_account.id, holder.id, confirm=False, consent=False)
    other_awaiting = _pledge(
        session, other_bank, other_account.id, other_holder.id, confirm=False, consent=False
    )
    keys: dict[str, dict[str, str]] = {"anonymous": {}}
    for role, party in [("exchange", exchange), ("auditor", auditor), ("bank", bank), ("holder", holder)]:
        keys[role] = f.auth(f.key(session, party, Role(role)))
    # "own": the resource belongs to the caller (the holder's, or the bank's own account for the bank).
    return World(
        keys,
        {
            "holder_party": str(holder.id),
            "bank_party": str(bank.id),
            "other_party": str(other_holder.id),
            "holder_account": str(own_account.id),
            "bank_account": str(bank_account.id),
            "other_account": str(other_account.id),
            "batch": str(batch.id),
            "serial": str(batch.serial_start),
            "own_pledge": str(own_active.pledge.id),
            "own_pending": str(own_pending.instruction.id),
            "own_instruction": str(own_active.instruction.id),
            "other_pledge": str(other_pending.pledge.id),
            "other_active": str(other_active.pledge.id),
            "other_instruction": str(other_pending.instruction.id),
            "own_awaiting": str(own_awaiting.instruction.id),
            "other_awaiting": str(other_awaiting.instruction.id),
            "holder_account_number": own_account.number,
            "holder_credit_code": str(holder.credit_code),
            "other_credit_code": str(other_holder.credit_code),
        },
    )


def _pledge(
    session: Session, bank: Any, account_id: Any, borrower_id: Any, *, confirm: bool, consent: bool = True
) -> Any:
    """A pledge of 10 units by `bank`; confirmed (active), waiting for the exchange, or (consent=False) still
    waiting for its pledgor's consent."""
    from datetime import date
    from decimal import Decimal

    from registry.ledger.service import Selection
    from registry.pledge import service as pledges

    made = pledges.register(
        session,
        f.bank_actor(bank),
        pledgor_account_id=account_id,
        borrower_party_id=borrower_id,
        loan=pledges.Loan(f"JK-{uuid4().hex[:8]}", Decimal("500000.00"), date(2026, 3, 2), date(2027, 3, 1)),
        collateral=Selection(credit_type="CCER", quantity=10),
        terms=pledges.Terms(Decimal("0.7"), Decimal("1.3"), Decimal("1.1")),
    )
    if consent:
        f.consent(session, made)
    if confirm:
        pledges.confirm(session, f.exchange_actor(session), made.instruction.id)
    return made


# (method, path template, body, expected status per role)
EXCHANGE_WRITE = {"anonymous": 401, "exchange": 201, "auditor": 403, "bank": 403, "holder": 403}
READ_ALL = {"anonymous": 401, "exchange": 200, "auditor": 200, "bank": 200, "holder": 200}
EXCHANGE_AUDITOR_READ = {"anonymous": 401, "exchange": 200, "auditor": 200, "bank": 403, "holder": 403}
OWN_READ = {"anonymous": 401, "exchange": 200, "auditor": 200, "bank": 200, "holder": 200}
OTHER_READ = {"anonymous": 401, "exchange": 200, "auditor": 200, "bank": 404, "holder": 404}
BANK_WRITE = {"anonymous": 401, "exchange": 403, "auditor": 403, "bank": 201, "holder": 403}
BANK_DECIDE = {"anonymous": 401, "exchange": 403, "auditor": 403, "bank": 200, "holder": 403}
PARTY_WRITE = {"anonymous": 401, "exchange": 403, "auditor": 403, "bank": 201, "holder": 201}
PARTY_WRITE_OTHER = {"anonymous": 401, "exchange": 403, "auditor": 403, "bank": 404, "holder": 404}
PARTY_DECIDE_OTHER = {"anonymous": 401, "exchange": 403, "auditor": 403, "bank": 404, "holder": 404}
# Only the pledgor consents to a bank's request: the bank that asked may not, the exchange may not.
PLEDGOR_DECIDE = {"anonymous": 401, "exchange": 403, "auditor": 403, "bank": 403, "holder": 200}
LOOKUP = {"anonymous": 401, "exchange": 200, "auditor": 200, "bank": 200, "holder": 403}
LOOKUP_MISS = {"anonymous": 401, "exchange": 404, "auditor": 404, "bank": 404, "holder": 403}
EXCHANGE_DECIDE = {"anonymous": 401, "exchange": 200, "auditor": 403, "bank": 403, "holder": 403}
LENDER_READ = {"anonymous": 401, "exchange": 200, "auditor": 200, "bank": 200, "holder": 403}
BANK_ONLY = {"anonymous": 401, "exchange": 403, "auditor": 403, "bank": 200, "holder": 403}
BANK_ONLY_MISSING = {"anonymous": 401, "exchange": 403, "auditor": 403, "bank": 404, "holder": 403}
PUBLIC_MISSING = dict.fromkeys(ROLES, 404)

CELLS: list[tuple[str, str, Any, dict[str, int]]] = [
    ("POST", "/v1/parties", {"name": "New Co {role}", "kind": "enterprise"}, EXCHANGE_WRITE),
    ("POST", "/v1/accounts", {"party_id": "{holder_party}"}, EXCHANGE_WRITE),
    ("POST", "/v1/credit-types", {"code": "X{ROLE}", "name": "x"}, EXCHANGE_WRITE),
    (
        "POST",
        "/v1/issuances",
        {
            "credit_type": "CCER",
            "project_code": "P",
            "project_type": "t",
            "vintage": 2024,
            "quantity": 5,
            "account_id": "{holder_account}",
        },
        EXCHANGE_WRITE,
    ),
    (
        "POST",
        "/v1/transfers",
        {
            "from_account_id": "{holder_account}",
            "to_account_id": "{bank_account}",
            "credit_type": "CCER",
            "quantity": 1,
        },
        EXCHANGE_WRITE,
    ),
    (
        "POST",
        "/v1/retirements",
        {"account_id": "{holder_account}", "credit_type": "CCER", "quantity": 1},
        EXCHANGE_WRITE,
    ),
    ("GET", "/v1/parties", None, READ_ALL),
    ("GET", "/v1/accounts", None, READ_ALL),
    ("GET", "/v1/credit-types", None, READ_ALL),
    ("GET", "/v1/project-types", None, READ_ALL),
    (
        "POST",
        "/v1/project-types",
        {"code": "x_{role}", "name_zh": "某类", "name_en": "Some kind"},
        EXCHANGE_WRITE,
    ),
    ("GET", "/v1/parties/{own_party}", None, OWN_READ),
    ("GET", "/v1/parties/{other_party}", None, OTHER_READ),
    ("GET", "/v1/accounts/{own_account}", None, OWN_READ),
    ("GET", "/v1/accounts/{other_account}", None, OTHER_READ),
    ("GET", "/v1/accounts/{own_account}/holdings", None, OWN_READ),
    ("GET", "/v1/accounts/{other_account}/holdings", None, OTHER_READ),
    ("GET", "/v1/issuances", None, EXCHANGE_AUDITOR_READ),
    ("GET", "/v1/issuances/{batch}", None, EXCHANGE_AUDITOR_READ),
    ("GET", "/v1/units/CCER/{serial}/history", None, EXCHANGE_AUDITOR_READ),
    ("GET", "/v1/audit/verify", None, EXCHANGE_AUDITOR_READ),
    (
        "POST",
        "/v1/pledges",
        {
            "pledgor_account_id": "{holder_account}",
            "borrower_party_id": "{holder_party}",
            "pledgee_party_id": "{bank_party}",
            "loan": {
                "contract_no": "JK-9",
                "principal": "100000.00",
                "start_date": "2026-03-02",
                "maturity_date": "2027-03-01",
            },
            "collateral": {"credit_type": "CCER", "quantity": 1},
            "terms": {"max_pledge_rate": "0.7", "warning_ratio": "1.3", "disposal_ratio": "1.1"},
        },
        PARTY_WRITE,  # the bank asks for the holder's units, or the holder for its own (joint application)
    ),
    ("GET", "/v1/pledges", None, READ_ALL),
    ("GET", "/v1/pledges/{own_pledge}", None, OWN_READ),
    ("GET", "/v1/pledges/{other_pledge}", None, OTHER_READ),
    ("POST", "/v1/pledges/{own_pledge}/instructions", {"type": "top_up", "quantity": 1}, PARTY_WRITE),
    ("POST", "/v1/pledges/{own_pledge}/instructions", {"type": "release", "quantity": 1}, BANK_WRITE),
    ("POST", "/v1/pledges/{other_pledge}/instructions", {"type": "top_up", "quantity": 1}, PARTY_WRITE_OTHER),
    ("GET", "/v1/instructions", None, READ_ALL),
    ("GET", "/v1/instructions/{own_instruction}", None, OWN_READ),
    ("GET", "/v1/instructions/{other_instruction}", None, OTHER_READ),
    ("POST", "/v1/instructions/{own_pending}/confirm", None, EXCHANGE_DECIDE),
    ("POST", "/v1/instructions/{own_pending}/reject", {"reason": "not the owner"}, EXCHANGE_DECIDE),
    ("POST", "/v1/instructions/{own_pending}/cancel", None, BANK_DECIDE),
    ("POST", "/v1/instructions/{other_instruction}/cancel", None, PARTY_DECIDE_OTHER),
    ("POST", "/v1/instructions/{own_awaiting}/consent", None, PLEDGOR_DECIDE),
    ("POST", "/v1/instructions/{own_awaiting}/decline", {"reason": "not agreed"}, PLEDGOR_DECIDE),
    ("POST", "/v1/instructions/{other_awaiting}/consent", None, PARTY_DECIDE_OTHER),
    (
        "GET",
        "/v1/accounts/lookup?number={holder_account_number}&credit_code={holder_credit_code}",
        None,
        LOOKUP,
    ),
    (
        "GET",
        "/v1/accounts/lookup?number={holder_account_number}&credit_code={other_credit_code}",
        None,
        LOOKUP_MISS,
    ),
    ("GET", "/v1/parties/lookup?credit_code={holder_credit_code}", None, LOOKUP),
    ("GET", "/v1/parties/lookup?credit_code=91510100MA6N4P5Q6C", None, LOOKUP_MISS),
    ("POST", "/v1/instructions/{other_instruction}/confirm", None, EXCHANGE_DECIDE),
    (
        "POST",
        "/v1/prices/trades",
        [{"credit_type": "CCER", "trade_date": "2026-02-27", "price": "66.00", "volume": 10}],
        EXCHANGE_WRITE,
    ),
    ("GET", "/v1/prices/CCER", None, READ_ALL),
    ("GET", "/v1/pledges/{own_pledge}/certificate", None, OWN_READ),
    ("GET", "/v1/pledges/{other_active}/certificate", None, OTHER_READ),
    ("GET", "/v1/pledges/{own_pledge}/certificates", None, OWN_READ),
    ("GET", "/v1/pledges/{other_active}/certificates", None, OTHER_READ),
    ("GET", "/v1/certificates/ZY-2026-999999-01/verify?code=AAAAAAAAAAAA", None, PUBLIC_MISSING),
    ("GET", "/v1/pledges/{own_pledge}/valuations", None, OWN_READ),
    ("GET", "/v1/pledges/{other_pledge}/valuations", None, OTHER_READ),
    ("GET", "/v1/reports/collateral-book?as_of=2026-03-02&bank_id={bank_party}", None, LENDER_READ),
    ("GET", "/v1/reports/exchange?from=2026-01-01&to=2026-03-02", None, EXCHANGE_AUDITOR_READ),
    ("GET", "/v1/alerts", None, LENDER_READ),
    ("GET", "/v1/webhook/deliveries", None, LENDER_READ),
    ("GET", "/v1/webhook", None, BANK_ONLY_MISSING),
    (
        "PUT",
        "/v1/webhook",
        # a public address: setting it asks no DNS (tests/hostile/test_webhooks.py covers names)
        {"url": "https://93.184.216.34/alerts", "secret": "0123456789abcdef"},
        BANK_ONLY,
    ),
]


def _fill(template: Any, world: World, role: str) -> Any:
    own = {"bank": ("bank_party", "bank_account")}.get(role, ("holder_party", "holder_account"))
    values = {
        **world.ids,
        "own_party": world.ids[own[0]],
        "own_account": world.ids[own[1]],
        "role": role,
        "ROLE": role.upper()[:8],
    }
    if isinstance(template, str):
        return template.format(**values)
    if isinstance(template, dict):
        return {k: _fill(v, world, role) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, world, role) for v in template]
    return template


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), CELLS, ids=[f"{m} {p}" for m, p, _, _ in CELLS]
)
def test_cell(
    client: TestClient, world: World, role: str, method: str, path: str, body: Any, expected: dict[str, int]
) -> None:
    response = client.request(
        method,
        _fill(path, world, role),
        headers=world.keys[role],
        json=_fill(body, world, role) if body is not None else None,
    )
    assert response.status_code == expected[role], response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("role", ["bank", "holder"])
def test_listings_show_only_ones_own(client: TestClient, world: World, role: str) -> None:
    own_party = world.ids["bank_party" if role == "bank" else "holder_party"]
    parties = client.get("/v1/parties", headers=world.keys[role]).json()["items"]
    accounts = client.get("/v1/accounts", headers=world.keys[role]).json()["items"]
    assert [p["id"] for p in parties] == [own_party]
    assert {a["party_id"] for a in accounts} == {own_party}
    other = client.get(
        "/v1/accounts", headers=world.keys[role], params={"party_id": world.ids["other_party"]}
    )
    assert other.json()["items"] == []
