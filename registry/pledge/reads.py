"""Reading pledges and instructions, always within what the principal may see (policy.scope_of)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlmodel import Session

from registry import authz
from registry.calendar import exchange_day
from registry.errors import InvalidInput, NotFound
from registry.pledge import assessment, policy
from registry.pledge import repository as repo
from registry.pledge.assessment import Assessment
from registry.pledge.models import Instruction, Pledge
from registry.pledge.states import HOLDS_UNITS, OPEN, InstructionStatus, InstructionType, PledgeStatus
from registry.principal import Principal, Role
from registry.valuation import service as valuation


def require_pledge(session: Session, principal: Principal, pledge_id: UUID) -> Pledge:
    return policy.require_visible(principal, repo.get_pledge(session, pledge_id), pledge_id)


def require_instruction(session: Session, principal: Principal, instruction_id: UUID) -> Instruction:
    """An instruction the caller may see; one of a pledge it may not see is not found, as one that does not
    exist (the answer names no pledge)."""
    instruction = repo.get_instruction(session, instruction_id)
    pledge = None if instruction is None else repo.get_pledge(session, instruction.pledge_id)
    if instruction is None or pledge is None or not policy.can_see(principal, pledge):
        raise NotFound("instruction", instruction_id)
    return instruction


def pledges_by_id(session: Session, pledge_ids: set[UUID]) -> list[Pledge]:
    """For reads that already passed the visibility check of what they list (instructions of pledges)."""
    return repo.pledges_by_id(session, list(pledge_ids))


def list_pledges(
    session: Session, principal: Principal, *, status: PledgeStatus | None, after: UUID | None, limit: int
) -> list[Pledge]:
    return repo.pledges_page(session, policy.scope_of(principal), status=status, after=after, limit=limit)


def list_instructions(
    session: Session,
    principal: Principal,
    *,
    status: InstructionStatus | None,
    after: int | None,
    limit: int,
    awaiting_me: bool = False,
) -> list[Instruction]:
    """Oldest first. `awaiting_me`: the requests waiting for the caller's own consent."""
    if awaiting_me and principal.party_id is None:
        return []
    return repo.instructions_page(
        session,
        policy.scope_of(principal),
        status=InstructionStatus.AWAITING_CONSENT if awaiting_me else status,
        consent_party_id=principal.party_id if awaiting_me else None,
        after=after,
        limit=limit,
    )


def details(
    session: Session, pledges: list[Pledge]
) -> tuple[dict[UUID, list[Any]], dict[UUID, list[Instruction]]]:
    """Blocks and instructions of each pledge, in two queries."""
    ids = [p.id for p in pledges]
    blocks: dict[UUID, list[Any]] = {i: [] for i in ids}
    for row in repo.units_of(session, ids):
        blocks[row.pledge_id].append(row)
    instructions: dict[UUID, list[Instruction]] = {i: [] for i in ids}
    for instruction in repo.instructions_of(session, ids):
        instructions[instruction.pledge_id].append(instruction)
    return blocks, instructions


def assessments(
    session: Session, instructions: list[Instruction], *, at: datetime, window_days: int
) -> dict[UUID, Assessment]:
    """Each open registration or top-up valued at today's reference price, as the exchange would confirm
    it: the pledge's units once this request goes through (frozen + held, or + asked while it waits for
    the pledgor). One reference price per credit type. The pledges are read only for those: a release's
    or a disposal's answer needs none (instructions listed here already passed the visibility check)."""
    wanted = [i for i in instructions if i.status in OPEN and InstructionType(i.type) in HOLDS_UNITS]
    if not wanted:
        return {}
    found = {p.id: p for p in repo.pledges_by_id(session, list({i.pledge_id for i in wanted}))}
    units = repo.units_by_pledge(session, list(found))
    refs: dict[int, valuation.Reference] = {}
    out: dict[UUID, Assessment] = {}
    for instruction in wanted:
        pledge = found[instruction.pledge_id]
        if pledge.credit_type_id not in refs:
            refs[pledge.credit_type_id] = valuation.reference(
                session, pledge.credit_type_id, exchange_day(at), window_days
            )
        held, frozen = units.get(pledge.id, (0, 0))
        if instruction.status == InstructionStatus.AWAITING_CONSENT and not held:
            held = _asked(instruction)
        out[instruction.id] = assessment.of_pledge(
            session, pledge, quantity=held + frozen, at=at, window_days=window_days,
            reference=refs[pledge.credit_type_id],
        )  # fmt: skip
    return out


def _asked(instruction: Instruction) -> int:
    if instruction.quantity is not None:
        return instruction.quantity
    return sum(b["serial_end"] - b["serial_start"] + 1 for b in instruction.blocks or [])


@dataclass(frozen=True, slots=True)
class QueueItem:
    row: Any  # the request, its pledge and what the pledgor's account holds (repository.queue)
    assessment: Assessment | None  # registrations and top-ups: at today's price, as it would be confirmed


def queue(
    session: Session, principal: Principal, *, at: datetime, window_days: int, limit: int = 100
) -> list[QueueItem]:
    """The back office's queue with the pledgor's holdings and the request's valuation beside each
    request (exchange, auditor)."""
    authz.require_role(principal, Role.EXCHANGE, Role.AUDITOR)
    rows = repo.queue(session, limit)
    refs: dict[int, valuation.Reference] = {}
    items = []
    for row in rows:
        judged = None
        if InstructionType(row.type) in HOLDS_UNITS:
            if row.credit_type_id not in refs:
                refs[row.credit_type_id] = valuation.reference(
                    session, row.credit_type_id, exchange_day(at), window_days
                )
            judged = assessment.assess(
                refs[row.credit_type_id], method=row.valuation_method, haircut=row.haircut,
                outstanding=row.pledge_outstanding, quantity=int(row.held_for_this + row.frozen_for_this),
                max_pledge_rate=row.max_pledge_rate, warning_ratio=row.warning_ratio,
                disposal_ratio=row.disposal_ratio,
            )  # fmt: skip
        items.append(QueueItem(row, judged))
    return items


def search(session: Session, principal: Principal, query: str) -> list[Pledge]:
    query = query.strip()
    if not query:
        return []
    if len(query) > 100:
        raise InvalidInput("q", "at most 100 characters")
    return repo.search(session, query, policy.scope_of(principal))
