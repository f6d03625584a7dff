"""Typed factories: they add and flush through the services (never raw inserts), so test data obeys
every rule the registry does."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from uuid import UUID

from sqlmodel import Session

from registry.access import service as access
from registry.ledger import reads as ledger_reads
from registry.ledger import service as ledger
from registry.ledger.models import Account, Issuance, Party, PartyKind
from registry.ledger.uscc import make as uscc
from registry.principal import SYSTEM, Actor, Role

_n = itertools.count(1)
AT = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


def system(at: datetime = AT) -> Actor:
    return Actor(SYSTEM, at, request_id="test")


def party(session: Session, kind: PartyKind = PartyKind.ENTERPRISE, name: str | None = None) -> Party:
    n = next(_n)
    return ledger.create_party(
        session,
        system(),
        name=name or f"{kind.value} {n} {UUID(int=n).hex[-6:]}",
        kind=kind,
        credit_code=uscc(f"9151010{n:010d}"),
    )


def account(session: Session, owner: Party | None = None) -> Account:
    return ledger.create_account(session, system(), party_id=(owner or party(session)).id)


def issue(
    session: Session, account_id: UUID, quantity: int, credit_type: str = "CCER", vintage: int = 2024
) -> Issuance:
    return ledger.issue(
        session,
        system(),
        credit_type=credit_type,
        project_code=f"P-{next(_n)}",
        project_type="forestry",
        vintage=vintage,
        quantity=quantity,
        account_id=account_id,
    )


def key(session: Session, owner: Party, role: Role, operator: str | None = None) -> str:
    return access.create_key(session, party=owner, role=role, operator=operator, now=AT).key


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def bare_pledge(session: Session, account_id: UUID, pledge_id: UUID | None = None) -> UUID:
    """An active pledge row with no instruction, for tests of the ledger's primitives."""
    from datetime import date
    from decimal import Decimal

    from registry.pledge.models import Pledge
    from registry.pledge.states import PledgeStatus
    from registry.valuation.models import ValuationMethod

    holder = ledger_reads.require_account(session, SYSTEM, account_id)
    row = Pledge(
        status=PledgeStatus.ACTIVE,
        registration_no=f"ZY-TEST-{next(_n):06d}",
        pledgee_party_id=party(session, PartyKind.BANK).id,
        pledgor_account_id=account_id,
        pledgor_party_id=holder.party_id,
        borrower_party_id=holder.party_id,
        contract_no="C-1",
        principal=Decimal("1000000.00"),
        outstanding_principal=Decimal("1000000.00"),
        start_date=date(2026, 3, 1),
        maturity_date=date(2027, 3, 1),
        credit_type_id=1,
        max_pledge_rate=Decimal("0.7"),
        warning_ratio=Decimal("1.3"),
        disposal_ratio=Decimal("1.1"),
        valuation_method=ValuationMethod.LOWER_OF,
        created_at=AT,
    )
    if pledge_id is not None:
        row.id = pledge_id
    session.add(row)
    session.flush()
    return row.id


def bank_actor(bank: Party, operator: str | None = None) -> Actor:
    from registry.principal import Principal

    return Actor(Principal(party_id=bank.id, role=Role.BANK, operator=operator), AT, request_id="test")


def the_exchange(session: Session) -> Party:
    """The exchange that keeps the registry (and issues its certificates): made once per test database."""
    from sqlmodel import col, select

    found = session.exec(
        select(Party).where(Party.kind == PartyKind.EXCHANGE).order_by(col(Party.created_at))
    )
    return found.first() or party(session, PartyKind.EXCHANGE)


def exchange_actor(session: Session, operator: str = "op-1") -> Actor:
    from registry.principal import Principal

    exchange = the_exchange(session)
    return Actor(
        Principal(party_id=exchange.id, role=Role.EXCHANGE, operator=operator), AT, request_id="test"
    )


def pledge_body(
    account_id: UUID | str, borrower_id: UUID | str, quantity: int = 1000, **overrides: object
) -> dict[str, object]:
    """The JSON a bank's loan system sends to register a pledge."""
    body: dict[str, object] = {
        "pledgor_account_id": str(account_id),
        "borrower_party_id": str(borrower_id),
        "loan": {
            "contract_no": f"JK-2026-{next(_n):05d}",
            "principal": "1000000.00",
            "currency": "CNY",
            "start_date": "2026-03-02",
            "maturity_date": "2027-03-01",
        },
        "collateral": {"credit_type": "CCER", "quantity": quantity},
        "terms": {"max_pledge_rate": "0.70", "warning_ratio": "1.30", "disposal_ratio": "1.10"},
        "external_refs": {"pboc_registration_no": "PBOC-2026-0001", "bank_ref": "LN-77"},
    }
    body.update(overrides)
    return body


def pledgor_actor(party_id: UUID, at: datetime = AT, operator: str | None = None) -> Actor:
    """The pledgor acting for itself (a holder key of the account's party)."""
    from registry.principal import Principal

    return Actor(Principal(party_id=party_id, role=Role.HOLDER, operator=operator), at, request_id="test")


def consent(session: Session, made: object, at: datetime | None = None) -> object:
    """The pledgor agrees to a bank's request (`made`: what pledges.register returned), at the request's
    time unless told otherwise: its units are held and the request goes to the exchange."""
    from registry.pledge import service as pledges

    pledge, instruction = made.pledge, made.instruction  # type: ignore[attr-defined]
    return pledges.consent(
        session, pledgor_actor(pledge.pledgor_party_id, at or instruction.created_at), instruction.id
    )
