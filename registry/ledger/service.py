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
from typing import Any, NamedTuple
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
from registry.principal import Actor, Principal

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


class MovedBlock(NamedTuple):  # a named tuple: cheap to make by the tens of thousands (a settlement batch)
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
                credit_type_id=ct.id,
                batch_id=batch.id,
                serial_start=batch.serial_start,
                serial_end=batch.serial_end,
                to_account_id=account_id,
                to_status=AVAILABLE,
            )
        ],
    )
    return batch


def may_transfer(principal: Principal) -> bool:
    """Who moves units between accounts: the exchange (settlement), never a bank or a holder."""
    return principal.role in authz.WRITERS_OF_REFERENCE_DATA


def transfer(
    session: Session, actor: Actor, *, from_account_id: UUID, to_account_id: UUID, selection: Selection
) -> Movement:
    authz.require_role(actor.principal, *authz.WRITERS_OF_REFERENCE_DATA)
    if from_account_id == to_account_id:
        raise InvalidInput("to_account_id", "units cannot be transferred to the account they are in")
    return move_units(
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
    return move_units(
        session,
        actor,
        EventKind.RETIRE,
        State(account_id, AVAILABLE),
        State(account_id, RETIRED),
        selection,
        reason=reason,
    )


# --- the one mechanism behind every operation -----------------------------------------------------


def move_units(
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
    if account.status != AccountStatus.ACTIVE:
        raise AccountClosed(account.id)


def _check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput("quantity", f"quantity must be between 1 and {MAX_QUANTITY}")
