"""Typed factories: they add and flush through the services (never raw inserts), so test data obeys
every rule the registry does."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from uuid import UUID

from sqlmodel import Session

from registry.access import service as access
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
