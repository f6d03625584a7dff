"""Ledger use cases. Each runs inside the caller's transaction and locks what it changes:
the accounts involved (in id order), then their blocks through those locks.

Invariants (checked here first, enforced again by the database, see docs/architecture.md):
  units(credit type) = issued(credit type), retired units included, at every commit
  no serial is in two blocks; a held or frozen block names its pledge
  held and frozen units are not transferred or retired; frozen units leave only by disposal
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlmodel import Session, col, select

from registry import authz
from registry.audit import service as audit
from registry.audit.models import EventKind
from registry.errors import AlreadyExists, InvalidInput, NotFound, RegistryError
from registry.ledger import repository as repo
from registry.ledger import uscc
from registry.ledger.blocks import Segment, normalize_ranges
from registry.ledger.errors import AccountClosed, BlocksNotAvailable, InsufficientUnits, SerialSpaceExhausted
from registry.ledger.models import (
    SERIAL_MAX,
    Account,
    AccountStatus,
    BlockStatus,
    CreditType,
    Issuance,
    Party,
    PartyKind,
    ProjectType,
)
from registry.ledger.repository import LockedAccount, State
from registry.principal import Actor, Principal, Role
from registry.ratelimit import service as ratelimit

AVAILABLE = BlockStatus.AVAILABLE.value
HELD = BlockStatus.HELD.value
FROZEN = BlockStatus.FROZEN.value
RETIRED = BlockStatus.RETIRED.value
MAX_QUANTITY = 10**12


@dataclass(frozen=True, slots=True)
class SerialRange:
    credit_type: str
    serial_start: int
    serial_end: int


@dataclass(frozen=True, slots=True)
class Selection:
    """Which units: `quantity` of `credit_type` (lowest serials first), or named `blocks`, or (neither) all."""

    credit_type: str | None = None
    quantity: int | None = None
    blocks: Sequence[SerialRange] = ()

    @property
    def everything(self) -> bool:
        return self.quantity is None and not self.blocks


ALL = Selection()  # every unit in the source state


@dataclass(frozen=True, slots=True)
class MovedBlock:
    credit_type: str
    batch_id: UUID
    serial_start: int
    serial_end: int

    @property
    def quantity(self) -> int:
        return self.serial_end - self.serial_start + 1


@dataclass(frozen=True, slots=True)
class Movement:
    kind: EventKind
    source: State
    target: State
    blocks: list[MovedBlock] = field(default_factory=list)

    @property
    def quantity(self) -> int:
        return sum(b.quantity for b in self.blocks)


# --- reference data -------------------------------------------------------------------------------


def create_party(
    session: Session, actor: Actor, *, name: str, kind: PartyKind, credit_code: str | None
) -> Party:
    authz.require_role(actor.principal, *authz.WRITERS_OF_REFERENCE_DATA)
    if credit_code is not None and not uscc.is_valid(credit_code):
        raise InvalidInput(
            "credit_code", f"{credit_code} is not a valid unified social credit code (check character)"
        )
    if repo.get_party_by_name(session, name) is not None:
        raise AlreadyExists(f"a party named {name!r} exists", field="name")
    party = Party(name=name, kind=kind, credit_code=credit_code, created_at=actor.at)
    session.add(party)
    session.flush()
    return party


def create_account(session: Session, actor: Actor, *, party_id: UUID) -> Account:
    authz.require_role(actor.principal, *authz.WRITERS_OF_REFERENCE_DATA)
    if repo.get_party(session, party_id) is None:
        raise NotFound("party", party_id, field="party_id")
    account = Account(number=repo.next_account_number(session), party_id=party_id, created_at=actor.at)
    session.add(account)
    session.flush()
    return account


def create_credit_type(session: Session, actor: Actor, *, code: str, name: str, unit: str) -> CreditType:
    """Credit types are data: CEA allowances, 排污权 or 用能权 are added here, not in code."""
    authz.require_role(actor.principal, *authz.WRITERS_OF_REFERENCE_DATA)
    if repo.get_credit_type(session, code) is not None:
        raise AlreadyExists(f"credit type {code} exists", field="code")
    credit_type = CreditType(code=code, name=name, unit=unit, created_at=actor.at)
    session.add(credit_type)
    session.flush()
    return credit_type


def create_project_type(
    session: Session, actor: Actor, *, code: str, name_zh: str, name_en: str
) -> ProjectType:
    """Names for a project type code, as pages and certificates show it (codes stay free on issuances)."""
    authz.require_role(actor.principal, *authz.WRITERS_OF_REFERENCE_DATA)
    if session.get(ProjectType, code) is not None:
        raise AlreadyExists(f"project type {code} exists", field="code")
    found = ProjectType(code=code, name_zh=name_zh, name_en=name_en, created_at=actor.at)
    session.add(found)
    session.flush()
    return found


def list_project_types(
    session: Session, principal: Principal, *, after: str | None = None, limit: int | None = None
) -> list[ProjectType]:
    """Reference data every authenticated party may read, by code: all of it, or a page after `after`."""
    query = select(ProjectType).order_by(col(ProjectType.code))
    if after is not None:
        query = query.where(col(ProjectType.code) > after)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def require_credit_type(session: Session, code: str, *, field: str = "credit_type") -> CreditType:
    credit_type = repo.get_credit_type(session, code)
    if credit_type is None:
        raise NotFound("credit type", code, field=field)
    return credit_type


# --- unit operations ------------------------------------------------------------------------------


def issue(
    session: Session,
    actor: Actor,
    *,
    credit_type: str,
    project_code: str,
    project_type: str,
    vintage: int,
    quantity: int,
    account_id: UUID,
) -> Issuance:
    """A new batch: `quantity` fresh serials, contiguous, landing in the account as one available block."""
    authz.require_role(actor.principal, *authz.WRITERS_OF_REFERENCE_DATA)
    _check_quantity(quantity)
    ct = require_credit_type(session, credit_type)
    account = _lock(session, [account_id])[account_id]
    _require_active(account)
    assert ct.id is not None
    start = repo.allocate_serials(session, ct.id, quantity)
    if start is None:
        session.refresh(ct)
        raise SerialSpaceExhausted(credit_type, quantity, SERIAL_MAX - ct.next_serial + 1)
    batch = Issuance(
        credit_type_id=ct.id,
        project_code=project_code,
        project_type=project_type,
        vintage=vintage,
        quantity=quantity,
        serial_start=start,
        serial_end=start + quantity - 1,
        account_id=account_id,
        issued_at=actor.at,
    )
    session.add(batch)
    session.flush()
    target = State(account_id, AVAILABLE)
    repo.insert_blocks(
        session, [(Segment(ct.id, batch.id, batch.serial_start, batch.serial_end, True), target)]
    )
    audit.record(
        session,
        actor,
        account,
        EventKind.ISSUE,
        [
            audit.Change(
                ct.id,
                batch.id,
                batch.serial_start,
                batch.serial_end,
                None,
                None,
                None,
                account_id,
                AVAILABLE,
                None,
            )
        ],
    )
    return batch


def transfer(
    session: Session, actor: Actor, *, from_account_id: UUID, to_account_id: UUID, selection: Selection
) -> Movement:
    authz.require_role(actor.principal, *authz.WRITERS_OF_REFERENCE_DATA)
    if from_account_id == to_account_id:
        raise InvalidInput("to_account_id", "units cannot be transferred to the account they are in")
    return _move(
        session,
        actor,
        EventKind.TRANSFER,
        State(from_account_id, AVAILABLE),
        State(to_account_id, AVAILABLE),
        selection,
        require_active=(from_account_id, to_account_id),
    )


def retire(
    session: Session, actor: Actor, *, account_id: UUID, selection: Selection, reason: str | None = None
) -> Movement:
    """Retired units stay in their account as `retired` blocks: serials are never reissued."""
    authz.require_role(actor.principal, *authz.WRITERS_OF_REFERENCE_DATA)
    if selection.everything:
        raise InvalidInput("quantity", "say how many units, or which blocks, to retire")
    return _move(
        session,
        actor,
        EventKind.RETIRE,
        State(account_id, AVAILABLE),
        State(account_id, RETIRED),
        selection,
        reason=reason,
    )


# --- primitives for the pledge lifecycle (the pledge service authorizes and calls them) -----------

# Block transitions of the pledge lifecycle, as data: kind -> (source status, target status, target keeps
# the pledge). The database's transition trigger allows exactly these (plus transfer and retirement).
PLEDGE_MOVES: dict[EventKind, tuple[str, str, bool]] = {
    EventKind.HOLD: (AVAILABLE, HELD, True),  # a bank asked: nobody can move these units meanwhile
    EventKind.RELEASE_HOLD: (HELD, AVAILABLE, False),  # request rejected, cancelled or lapsed
    EventKind.FREEZE: (HELD, FROZEN, True),  # the exchange confirmed: pledged
    EventKind.UNFREEZE: (FROZEN, AVAILABLE, False),  # released after repayment
    EventKind.DISPOSE: (FROZEN, AVAILABLE, False),  # default: to the lender's or a buyer's account
}


def move_pledged(
    session: Session,
    actor: Actor,
    kind: EventKind,
    *,
    account_id: UUID,
    pledge_id: UUID,
    selection: Selection = ALL,
    to_account_id: UUID | None = None,
    reason: str | None = None,
) -> Movement:
    """One step of a pledge's units in the pledgor's account. An empty selection means all of the
    pledge's units in the source status; a disposal moves them to `to_account_id`."""
    source_status, target_status, keeps_pledge = PLEDGE_MOVES[kind]
    if kind is EventKind.HOLD and selection.everything:
        raise InvalidInput("quantity", "say how many units, or which blocks, to hold")
    target_account = account_id
    if kind is EventKind.DISPOSE:
        if to_account_id is None or to_account_id == account_id:
            raise InvalidInput("to_account_id", "disposal moves units to another account")
        target_account = to_account_id
    return _move(
        session,
        actor,
        kind,
        State(account_id, source_status, None if source_status == AVAILABLE else pledge_id),
        State(target_account, target_status, pledge_id if keeps_pledge else None),
        selection,
        reason=reason,
        require_active=(target_account,) if kind in (EventKind.HOLD, EventKind.DISPOSE) else (),
    )


def hold(
    session: Session, actor: Actor, *, account_id: UUID, pledge_id: UUID, selection: Selection
) -> Movement:
    return move_pledged(
        session, actor, EventKind.HOLD, account_id=account_id, pledge_id=pledge_id, selection=selection
    )


def release_hold(
    session: Session,
    actor: Actor,
    *,
    account_id: UUID,
    pledge_id: UUID,
    selection: Selection = ALL,
    reason: str | None = None,
) -> Movement:
    return move_pledged(
        session,
        actor,
        EventKind.RELEASE_HOLD,
        account_id=account_id,
        pledge_id=pledge_id,
        selection=selection,
        reason=reason,
    )


def freeze(session: Session, actor: Actor, *, account_id: UUID, pledge_id: UUID) -> Movement:
    return move_pledged(session, actor, EventKind.FREEZE, account_id=account_id, pledge_id=pledge_id)


def unfreeze(
    session: Session,
    actor: Actor,
    *,
    account_id: UUID,
    pledge_id: UUID,
    selection: Selection = ALL,
    reason: str | None = None,
) -> Movement:
    return move_pledged(
        session,
        actor,
        EventKind.UNFREEZE,
        account_id=account_id,
        pledge_id=pledge_id,
        selection=selection,
        reason=reason,
    )


def dispose(
    session: Session,
    actor: Actor,
    *,
    account_id: UUID,
    pledge_id: UUID,
    to_account_id: UUID,
    selection: Selection = ALL,
    reason: str | None = None,
) -> Movement:
    return move_pledged(
        session,
        actor,
        EventKind.DISPOSE,
        account_id=account_id,
        pledge_id=pledge_id,
        selection=selection,
        to_account_id=to_account_id,
        reason=reason,
    )


# --- the one mechanism behind every operation -----------------------------------------------------


def _move(
    session: Session,
    actor: Actor,
    kind: EventKind,
    source: State,
    target: State,
    selection: Selection,
    *,
    reason: str | None = None,
    require_active: Sequence[UUID] = (),
) -> Movement:
    """Take the selected units out of `source` and put them in `target`, splitting and joining blocks, with
    their audit events: one call of the database's `registry_move` (migration 0012) per credit type named,
    which locks both accounts first. A refusal comes back before anything was written."""
    calls: list[repo.MoveCall] = []
    if selection.quantity is not None:
        if selection.blocks:
            raise InvalidInput("blocks", "give either a quantity or blocks, not both")
        if selection.credit_type is None:
            raise InvalidInput("credit_type", "a quantity needs its credit type")
        _check_quantity(selection.quantity)
        calls.append(repo.MoveCall(selection.credit_type, quantity=selection.quantity))
    elif selection.blocks:
        calls += [
            repo.MoveCall(code, ranges=ranges) for code, ranges in sorted(_ranges_by_type(selection).items())
        ]
    else:
        calls.append(repo.MoveCall(selection.credit_type, everything=True))
    moved: list[MovedBlock] = []
    for call in calls:
        rows = repo.move(
            session, actor, kind, source, target, call, reason=reason, require_active=require_active
        )
        if rows and rows[0].refusal is not None:
            raise _refusal(rows[0].refusal, source, call, selection)
        moved += [MovedBlock(r.credit_type, r.batch_id, r.serial_start, r.serial_end) for r in rows]
    return Movement(kind, source, target, moved)


def _refusal(
    refusal: dict[str, Any], source: State, call: repo.MoveCall, selection: Selection
) -> RegistryError:
    code = call.credit_type or ""
    if refusal["code"] == "unknown_credit_type":
        return NotFound("credit type", code, field="credit_type" if selection.credit_type else "blocks")
    if refusal["code"] == "account_not_found":
        return NotFound("account", refusal["account_id"])
    if refusal["code"] == "account_closed":
        return AccountClosed(UUID(refusal["account_id"]))
    if refusal["code"] == "insufficient_units":
        return InsufficientUnits(account_id=source.account_id, credit_type=code, status=source.status,
                                 requested=refusal["requested"], available=refusal["available"])  # fmt: skip
    missing = [(int(s), int(e)) for s, e in refusal["missing"] or []]
    return BlocksNotAvailable(
        account_id=source.account_id, credit_type=code, status=source.status, missing=missing
    )


def _ranges_by_type(selection: Selection) -> dict[str, list[tuple[int, int]]]:
    """The named blocks by credit type code, each type's ranges sorted and joined; overlaps refused."""
    grouped: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for n, block in enumerate(selection.blocks):
        if not 1 <= block.serial_start <= block.serial_end <= SERIAL_MAX:
            raise InvalidInput(f"blocks[{n}]", "need 1 <= serial_start <= serial_end <= 2^40-1")
        grouped[block.credit_type].append((block.serial_start, block.serial_end))
    out = {}
    for code, ranges in grouped.items():
        normalized = normalize_ranges(ranges)
        if sum(e - s + 1 for s, e in normalized) != sum(e - s + 1 for s, e in ranges):
            raise InvalidInput("blocks", "the blocks overlap each other")
        out[code] = normalized
    return out


def _lock(session: Session, account_ids: Sequence[UUID]) -> dict[UUID, LockedAccount]:
    accounts = repo.lock_accounts(session, account_ids)
    for account_id in account_ids:
        if account_id not in accounts:
            raise NotFound("account", account_id)
    return accounts


def _require_active(account: LockedAccount) -> None:
    if account.status != AccountStatus.ACTIVE.value:
        raise AccountClosed(account.id)


def _check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput("quantity", f"quantity must be between 1 and {MAX_QUANTITY}")


# --- reads (tenant-scoped) ------------------------------------------------------------------------


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
