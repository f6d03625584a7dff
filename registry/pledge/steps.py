"""The steps every use case of the pledge lifecycle shares: locking the pledge and its instruction in
that order, the checks of an instruction's state, holding the asked units, and deciding (the state
machine's move, its event in the decision trail, the certificate and the alerts it brings)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlmodel import Session

from registry import rows
from registry.audit import decisions
from registry.audit.decisions import DecisionKind
from registry.audit.models import EventKind
from registry.calendar import exchange_day
from registry.errors import InvalidInput, InvalidState, NotFound
from registry.ledger import pledged
from registry.ledger.service import Selection, SerialRange
from registry.pledge import policy
from registry.pledge import repository as repo
from registry.pledge.errors import InstructionNotOpen, Lapsed
from registry.pledge.models import Instruction, Pledge
from registry.pledge.states import (
    HOLDS_UNITS,
    OPEN,
    Decision,
    InstructionStatus,
    InstructionType,
    PledgeStatus,
    next_instruction_status,
    next_status,
)
from registry.principal import Actor
from registry.valuation import service as valuation

log = logging.getLogger(__name__)

TRAIL_KIND = {
    Decision.CONSENT: DecisionKind.CONSENT,
    Decision.DECLINE: DecisionKind.DECLINE,
    Decision.CONFIRM: DecisionKind.CONFIRM,
    Decision.CONFIRM_PARTIAL: DecisionKind.CONFIRM,
    Decision.REJECT: DecisionKind.REJECT,
    Decision.CANCEL: DecisionKind.CANCEL,
    Decision.EXPIRE: DecisionKind.EXPIRE,
}


def decide(
    session: Session,
    actor: Actor,
    pledge: Pledge,
    instruction: Instruction,
    decision: Decision,
    *,
    reason: str | None = None,
    terms: dict[str, Any] | None = None,
) -> Instruction:
    """Move an open instruction and its pledge along the state machine, once; lift the hold of a request
    that does not go through; record the decision in the pledge's trail."""
    kind = InstructionType(instruction.type)
    status = next_instruction_status(InstructionStatus(instruction.status), decision)
    after = next_status(PledgeStatus(pledge.status), kind, decision)
    if status is None or after is None:
        raise InvalidState(f"a {instruction.status} {kind.value} instruction cannot {decision.value}")
    if status is not InstructionStatus.CONFIRMED and status not in OPEN and holds(pledge, instruction):
        pledged.move_pledged(
            session, acting_for(actor, instruction, pledge), EventKind.RELEASE_HOLD,
            account_id=pledge.pledgor_account_id, pledge_id=pledge.id, reason=reason or status.value,
        )  # fmt: skip
    instruction.status = status
    if status not in OPEN:
        instruction.decided_by = policy.decided_by(actor.principal)
        instruction.decided_by_key_id = actor.principal.key_id
        instruction.decided_at = actor.at
        instruction.decision_reason = reason
    if after != pledge.status:
        pledge.status = after
        if after not in (PledgeStatus.PENDING, PledgeStatus.ACTIVE):
            pledge.closed_at = actor.at
            pledge.hold_expires_at = None
    # The pledge's new state (e.g. its registration number), its status and the decision's event in the
    # pledge's trail move together, in one statement.
    event = decisions.event(
        actor, pledge_id=pledge.id, instruction_id=instruction.id, kind=TRAIL_KIND[decision], reason=reason,
        terms=terms,
    )  # fmt: skip
    rows.save_changes(session, pledge, instruction, along=event)
    return instruction


def holds(pledge: Pledge, instruction: Instruction) -> bool:
    """Whether the instruction holds units now: it is of a kind that holds, and the pledgor has agreed
    (it asked itself, or consented). Before joint application every such request held at once."""
    if InstructionType(instruction.type) not in HOLDS_UNITS:
        return False
    return (
        instruction.status == InstructionStatus.PENDING
        or instruction.requested_by_party_id == pledge.pledgor_party_id
    )


def hold(session: Session, actor: Actor, pledge: Pledge, instruction: Instruction) -> None:
    """Hold the units a joint application asks for, in the pledgor's account, on the pledgor's say (a
    closed account is refused by the move itself: a hold requires its account active)."""
    code = repo.credit_type_code(session, pledge.credit_type_id)
    pledged.hold(
        session, acting_for(actor, instruction, pledge), account_id=pledge.pledgor_account_id, pledge_id=pledge.id,
        selection=selection_of(session, pledge, instruction, code),
    )  # fmt: skip


def lock_visible(session: Session, actor: Actor, pledge_id: UUID) -> tuple[Pledge, repo.Waiting | None]:
    """The pledge, locked, and its instruction still waiting (if any); a pledge the caller may not see is
    not found."""
    found = repo.lock_pledge(session, pledge_id)
    pledge = policy.require_visible(actor.principal, found[0] if found else None, pledge_id)
    return pledge, found[1] if found else None


def lock_instruction(session: Session, actor: Actor, instruction_id: UUID) -> tuple[Pledge, Instruction]:
    """Pledge first (found from the instruction), then the instruction, in one statement: the one lock
    order of every pledge operation. An instruction of a pledge the caller may not see is not found, as
    one that does not exist: the answer names no pledge."""
    found = repo.lock_with_instruction(session, instruction_id)
    if found is None or not policy.can_see(actor.principal, found[0]):
        raise NotFound("instruction", instruction_id)
    return found


def lock_to_confirm(
    session: Session, actor: Actor, instruction_id: UUID, window_days: int
) -> tuple[Pledge, Instruction, valuation.Reference]:
    """As `lock_instruction`, with the reference prices a confirmation judges on (as of the exchange day of
    the decision), in the same round trip."""
    found = repo.lock_with_instruction_and_prices(
        session, instruction_id, exchange_day(actor.at), window_days
    )
    if found is None or not policy.can_see(actor.principal, found[0]):
        raise NotFound("instruction", instruction_id)
    return found


def require_status(instruction: Instruction, wanted: InstructionStatus) -> None:
    if instruction.status != wanted:
        raise InstructionNotOpen(instruction.id, instruction.status, wanted.value)


def require_open(instruction: Instruction) -> None:
    if instruction.status not in OPEN:
        raise InstructionNotOpen(instruction.id, instruction.status, None)


def require_not_lapsed(instruction: Instruction, at: datetime) -> None:
    if instruction.hold_expires_at is not None and instruction.hold_expires_at <= at:
        raise Lapsed(instruction.id, instruction.hold_expires_at)


def acting_for(actor: Actor, instruction: Instruction, pledge: Pledge) -> Actor:
    return actor.for_instruction(instruction.id, on_behalf_of=pledge.pledgee_party_id)


def selection_of(
    session: Session, pledge: Pledge, instruction: Instruction, credit_type: str | None = None
) -> Selection:
    blocks = [
        SerialRange(b["credit_type"], b["serial_start"], b["serial_end"]) for b in instruction.blocks or []
    ]
    if blocks:
        return Selection(blocks=blocks)
    if instruction.quantity is not None:
        if credit_type is None:
            credit_type = repo.credit_type_code(session, pledge.credit_type_id)
        return Selection(credit_type=credit_type, quantity=instruction.quantity)
    return Selection()


def same_type(selection: Selection, credit_type: str) -> Selection:
    for n, block in enumerate(selection.blocks):
        if block.credit_type != credit_type:
            raise InvalidInput(f"blocks[{n}].credit_type", f"this pledge is of {credit_type}")
    if selection.credit_type not in (None, credit_type):
        raise InvalidInput("credit_type", f"this pledge is of {credit_type}")
    if selection.quantity is not None:
        return Selection(credit_type=credit_type, quantity=selection.quantity)
    return selection
