"""Ledger reads, each scoped to what the caller may see: parties, accounts, holdings, issuances, credit
types, and the lookups a bank makes to name a pledgor's account or a borrower (throttled on misses)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlmodel import Session

from registry import authz
from registry.errors import NotFound
from registry.ledger import repository as repo
from registry.ledger.models import Account, CreditType, Issuance, Party, PartyKind
from registry.ledger.service import require_credit_type
from registry.principal import Principal, Role
from registry.ratelimit import service as ratelimit


def require_party(session: Session, principal: Principal, party_id: UUID) -> Party:
    party = repo.get_party(session, party_id)
    if party is None:
        raise NotFound("party", party_id)
    authz.require_party_visible(principal, party.id)
    return party


def require_account(session: Session, principal: Principal, account_id: UUID) -> Account:
    account = repo.get_account(session, account_id)
    if account is None:
        raise NotFound("account", account_id)
    authz.require_party_visible(principal, account.party_id, kind="account", ident=account_id)
    return account


@dataclass(frozen=True, slots=True)
class AccountFound:
    """What a bank may know of an account from its number and its holder's credit code: enough to name it
    in a pledge request, nothing of what it holds."""

    id: UUID
    number: str
    party_id: UUID
    party_name: str


# Lookups that find nothing are throttled per API key: a bank cannot walk the account numbers of a party
# whose (public) credit code it knows.
LOOKUP_LIMIT = ratelimit.Policy(scope="account_lookup", free_failures=20, window=timedelta(hours=1))


def _lookup_attempt(session: Session, principal: Principal, now: datetime) -> ratelimit.Attempt:
    """Lookups are counted before they are made (a miss keeps its count, a hit gives it back)."""
    authz.require_role(principal, Role.BANK, Role.EXCHANGE, Role.AUDITOR)
    who = f"key:{principal.key_id}" if principal.key_id else f"party:{principal.party_id}"
    return ratelimit.reserve(session, LOOKUP_LIMIT, who, now)


def lookup_account(
    session: Session, principal: Principal, *, number: str, credit_code: str, now: datetime
) -> AccountFound:
    """The account whose number and holder's unified social credit code both match, as a bank resolves
    the pledgor's account from what the borrower gave it; a plain NotFound when they do not."""
    attempt = _lookup_attempt(session, principal, now)
    row = repo.account_by_number_and_credit_code(session, number.strip(), credit_code.strip().upper())
    if row is None:
        raise NotFound("account", number, field="number")
    ratelimit.release(session, attempt)
    return AccountFound(row.id, row.number, row.party_id, row.party_name)


@dataclass(frozen=True, slots=True)
class PartyFound:
    id: UUID
    name: str
    kind: str


def lookup_party(session: Session, principal: Principal, *, credit_code: str, now: datetime) -> PartyFound:
    """A party by its unified social credit code, as a bank names a borrower that holds no account (its name
    and kind, nothing of its accounts); misses are throttled with the account lookups."""
    attempt = _lookup_attempt(session, principal, now)
    party = repo.get_party_by_credit_code(session, credit_code.strip().upper())
    if party is None or party.kind not in (PartyKind.ENTERPRISE, PartyKind.BANK):
        raise NotFound("party", credit_code, field="credit_code")
    ratelimit.release(session, attempt)
    return PartyFound(party.id, party.name, party.kind.value)


def list_parties(session: Session, principal: Principal, *, after: UUID | None, limit: int) -> list[Party]:
    return repo.parties_page(session, party_id=authz.party_scope(principal), after=after, limit=limit)


def list_accounts(
    session: Session, principal: Principal, *, party_id: UUID | None, after: UUID | None, limit: int
) -> list[Account]:
    scope = authz.party_scope(principal)
    if scope is not None and party_id is not None and party_id != scope:
        return []
    return repo.accounts_page(session, party_id=scope or party_id, after=after, limit=limit)


def list_issuances(
    session: Session, principal: Principal, *, credit_type: str | None, after: UUID | None, limit: int
) -> list[Issuance]:
    authz.require_role(principal, *authz.READERS_OF_EVERYTHING)
    ct_id = require_credit_type(session, credit_type).id if credit_type else None
    return repo.issuances_page(session, credit_type_id=ct_id, after=after, limit=limit)


def require_issuance(session: Session, principal: Principal, issuance_id: UUID) -> Issuance:
    authz.require_role(principal, *authz.READERS_OF_EVERYTHING)
    batch = repo.get_issuance(session, issuance_id)
    if batch is None:
        raise NotFound("issuance", issuance_id)
    return batch


@dataclass(frozen=True, slots=True)
class Holdings:
    account: Account
    blocks: list[Any]
    totals: list[Any]


def holdings(
    session: Session, principal: Principal, account_id: UUID, *, after: tuple[int, int] | None, limit: int
) -> Holdings:
    account = require_account(session, principal, account_id)
    return Holdings(
        account,
        repo.holdings_page(session, account_id, after=after, limit=limit),
        repo.holding_totals(session, account_id),
    )


def list_credit_types(
    session: Session, principal: Principal, *, after: int | None = None, limit: int | None = None
) -> list[CreditType]:
    """Reference data every authenticated party may read: all of it, or a page."""
    return repo.credit_types(session, after=after, limit=limit)
