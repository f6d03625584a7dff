"""Deciding: the exchange confirms (a disposal by a second operator, on exactly the reviewed terms) or
rejects; requests nobody agreed to or confirmed in time lapse."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlmodel import Session

from registry import authz, rows
from registry.alert import service as alerts
from registry.audit import decisions
from registry.audit.decisions import DecisionKind
from registry.audit.models import EventKind
from registry.calendar import EXCHANGE_TZ
from registry.config import VWAP_DAYS
from registry.errors import InvalidInput
from registry.ledger import pledged
from registry.pledge import assessment, certify, four_eyes, policy, steps
from registry.pledge import repository as repo
from registry.pledge.errors import CollateralShort, FourEyesRequired
from registry.pledge.four_eyes import Offered
from registry.pledge.models import Instruction, Pledge
from registry.pledge.states import (
    FOUR_EYES,
    HOLDS_UNITS,
    OPEN,
    Decision,
    InstructionStatus,
    InstructionType,
    PledgeStatus,
)
from registry.principal import Actor, Role
from registry.valuation import service as valuation

log = logging.getLogger(__name__)


def confirm(
    session: Session,
    actor: Actor,
    instruction_id: UUID,
    *,
    buyer_account_id: UUID | None = None,
    price: Decimal | None = None,
    proceeds: Decimal | None = None,
    window_days: int = VWAP_DAYS,
) -> Instruction:
    """The exchange confirms. A registration or top-up only while the loan is within its terms at today's
    price; a disposal only by a second person, on the terms the first reviewed."""
    authz.require_role(actor.principal, Role.EXCHANGE, Role.SYSTEM)
    pledge, instruction, ref = steps.lock_to_confirm(session, actor, instruction_id, window_days)
    kind = InstructionType(instruction.type)
    steps.require_status(instruction, InstructionStatus.PENDING)
    steps.require_not_lapsed(instruction, actor.at)
    offered = Offered(buyer_account_id, price, proceeds)
    if kind not in FOUR_EYES and not offered.empty:
        raise InvalidInput("buyer_account_id", "a buyer, price and proceeds belong to a disposal")
    if kind in FOUR_EYES:
        terms = _second_pair_of_eyes(session, actor, pledge, instruction, offered)
        if terms is None:
            return instruction  # reviewed: still pending, waiting for another person
        return _apply_disposal(session, actor, pledge, instruction, terms, window_days)
    took_all = False
    if kind in HOLDS_UNITS:
        # A registration's pledge has nothing frozen yet; a top-up's has what it secures already.
        frozen = 0 if kind is InstructionType.REGISTER else repo.frozen_quantity(session, pledge.id)
        moved = pledged.freeze(
            session,
            steps.acting_for(actor, instruction, pledge),
            account_id=pledge.pledgor_account_id,
            pledge_id=pledge.id,
        )
        # Judged on the units now frozen, the held ones included: a refusal rolls the freeze back with
        # everything else the confirmation did.
        judged = assessment.of_pledge(
            session, pledge, quantity=moved.quantity + frozen, at=actor.at, window_days=window_days,
            reference=ref,
        )  # fmt: skip
        if not judged.within_terms:
            raise CollateralShort(judged)
        if kind is InstructionType.REGISTER:
            # Drawn when the confirmation is saved (steps.decide), in the statement that writes it.
            rows.compute(
                pledge, "registration_no", repo.registration_no(actor.at.astimezone(EXCHANGE_TZ).year)
            )
            pledge.confirmed_at = actor.at
            pledge.hold_expires_at = None
    else:
        selection = steps.selection_of(session, pledge, instruction)
        moved = pledged.move_pledged(
            session, steps.acting_for(actor, instruction, pledge), EventKind.UNFREEZE,
            account_id=pledge.pledgor_account_id, pledge_id=pledge.id, selection=selection,
            reason=instruction.reason,
        )  # fmt: skip
        if instruction.outstanding_principal is not None:
            pledge.outstanding_principal = instruction.outstanding_principal
        took_all = selection.everything
    instruction.applied_quantity = moved.quantity
    return _confirmed(session, actor, pledge, instruction, window_days, took_all=took_all)


def _second_pair_of_eyes(
    session: Session, actor: Actor, pledge: Pledge, instruction: Instruction, offered: Offered
) -> four_eyes.DisposalTerms | None:
    """The reviewed terms to apply now, or None after recording a (new) review. A confirmation that names
    other terms than the review's is itself a review, by its operator, for a further person to confirm."""
    operator = policy.require_person(actor.principal)
    review = four_eyes.reviewed(instruction)
    if review is None or not (
        offered.empty or four_eyes.resolve(session, pledge, instruction, offered) == review
    ):
        terms = four_eyes.resolve(session, pledge, instruction, offered)
        assert actor.principal.operator is not None
        four_eyes.record_review(instruction, terms, actor.principal.operator.strip(), actor.at)
        reviewed = decisions.event(
            actor, pledge_id=pledge.id, instruction_id=instruction.id, kind=DecisionKind.REVIEW,
            terms=terms.as_dict(),
        )  # fmt: skip
        rows.save_changes(session, instruction, along=reviewed)
        return None
    assert instruction.reviewed_by is not None
    if instruction.reviewed_by.strip().casefold() == operator:
        raise FourEyesRequired(instruction.reviewed_by)
    return review


def _apply_disposal(
    session: Session,
    actor: Actor,
    pledge: Pledge,
    instruction: Instruction,
    terms: four_eyes.DisposalTerms,
    window_days: int,
) -> Instruction:
    selection = steps.selection_of(session, pledge, instruction)
    moved = pledged.dispose(
        session, steps.acting_for(actor, instruction, pledge), account_id=pledge.pledgor_account_id,
        pledge_id=pledge.id, to_account_id=terms.to_account_id, selection=selection, reason=instruction.reason,
    )  # fmt: skip
    instruction.to_account_id = terms.to_account_id
    instruction.price, instruction.proceeds = terms.price, terms.proceeds
    instruction.applied_quantity = moved.quantity
    return _confirmed(
        session, actor, pledge, instruction, window_days, terms=terms.as_dict(), took_all=selection.everything
    )


def _confirmed(
    session: Session,
    actor: Actor,
    pledge: Pledge,
    instruction: Instruction,
    window_days: int,
    terms: dict[str, Any] | None = None,
    took_all: bool = False,
) -> Instruction:
    """Close a confirmed instruction; value what is now pledged; issue the certificate that states it. A
    release or disposal that `took_all` the pledge's frozen units (the pledge locked) left none: nothing
    to count to know that it ends the pledge."""
    kind = InstructionType(instruction.type)
    decision = Decision.CONFIRM
    if (
        kind in (InstructionType.RELEASE, InstructionType.DISPOSE)
        and not took_all
        and repo.frozen_quantity(session, pledge.id)
    ):
        decision = Decision.CONFIRM_PARTIAL
    closed = steps.decide(session, actor, pledge, instruction, decision, terms=terms)
    if pledge.status == PledgeStatus.ACTIVE:
        # The collateral changed: value it now (this is also the valuation at registration), in the
        # confirmation's transaction without a savepoint of its own: the figures fit whatever the inputs
        # (tests/hostile/test_jobs.py), and a confirmation the database would not value is not made.
        valuation.revalue(
            session, now=actor.at, window_days=window_days, pledge_ids=[pledge.id], isolated=False
        )
    else:  # released or disposed: nothing is at risk any more
        alerts.clear_closed(session, pledge.id, now=actor.at)
    # The next certificate version (or the revocation of the last one) commits with the change it states.
    certify.on_confirmed(session, actor, pledge, closed)
    return closed


def reject(session: Session, actor: Actor, instruction_id: UUID, *, reason: str) -> Instruction:
    authz.require_role(actor.principal, Role.EXCHANGE, Role.SYSTEM)
    pledge, instruction = steps.lock_instruction(session, actor, instruction_id)
    steps.require_status(instruction, InstructionStatus.PENDING)
    return steps.decide(session, actor, pledge, instruction, Decision.REJECT, reason=reason)


def expire_lapsed(session: Session, actor: Actor, *, limit: int = 500) -> int:
    """Requests nobody consented to or confirmed in time: closed, held units back to the pledgor. A
    confirmed pledge never lapses: only instructions still waiting have a lapse time. Each request is
    closed in a savepoint of its own, so one that cannot be closed is skipped (and retried next run)
    while the others lapse."""
    done = 0
    for instruction_id in repo.lapsed_open(session, actor.at, limit):
        try:
            with session.begin_nested():
                pledge, instruction = steps.lock_instruction(session, actor, instruction_id)
                if instruction.status in OPEN:
                    why = (
                        "nobody consented in time"
                        if instruction.status == InstructionStatus.AWAITING_CONSENT
                        else "the exchange did not confirm in time"
                    )
                    steps.decide(session, actor, pledge, instruction, Decision.EXPIRE, reason=why)
                    done += 1
        except Exception:  # one request that cannot be closed never stops the others
            log.exception("could not lapse instruction %s; retried at the next run", instruction_id)
            session.expire_all()
    return done
