"""The pledge lifecycle. Registration and top-up are joint applications (共同申请): whichever of the pledgee
bank and the pledgor asks, the other consents; the pledgor's units are held only once the pledgor has
agreed, and only then does the request reach the exchange, which confirms or rejects. Release and
disposal are the bank's to ask; a disposal is applied by a second exchange operator on exactly the terms
the first reviewed.

Each step is one transaction that locks the pledge, then its instruction, then the accounts. Every
instruction is decided at most once (the database refuses to change a decided one), every unit movement
goes through the ledger's primitives (the account chains of the audit trail), and every decision is an
event of the pledge's decision trail naming the person who took it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlmodel import Session

from registry import authz
from registry.alert import service as alerts
from registry.audit import decisions
from registry.audit.decisions import DecisionKind
from registry.calendar import EXCHANGE_TZ, add_business_days, exchange_day
from registry.errors import Forbidden, InvalidInput, InvalidState, NotFound
from registry.ledger import pledged
from registry.ledger import repository as ledger_repo
from registry.ledger import service as ledger
from registry.ledger.errors import AccountClosed, InsufficientUnits
from registry.ledger.models import AccountStatus, BlockStatus, PartyKind
from registry.ledger.service import ALL, Selection, SerialRange
from registry.pledge import assessment, certify, four_eyes, policy, rules
from registry.pledge import repository as repo
from registry.pledge.errors import CollateralShort, FourEyesRequired, InstructionNotOpen, Lapsed
from registry.pledge.four_eyes import Offered
from registry.pledge.models import Instruction, Pledge
from registry.pledge.rules import Loan, Terms
from registry.pledge.states import (
    FOUR_EYES,
    HOLDS_UNITS,
    NEEDS_CONSENT,
    OPEN,
    REQUESTABLE,
    Decision,
    InstructionStatus,
    InstructionType,
    PledgeStatus,
    next_instruction_status,
    next_status,
)
from registry.principal import Actor, Role
from registry.valuation import service as valuation

__all__ = ["Loan", "Registered", "Terms"]

log = logging.getLogger(__name__)

_TRAIL_KIND = {
    Decision.CONSENT: DecisionKind.CONSENT,
    Decision.DECLINE: DecisionKind.DECLINE,
    Decision.CONFIRM: DecisionKind.CONFIRM,
    Decision.CONFIRM_PARTIAL: DecisionKind.CONFIRM,
    Decision.REJECT: DecisionKind.REJECT,
    Decision.CANCEL: DecisionKind.CANCEL,
    Decision.EXPIRE: DecisionKind.EXPIRE,
}


@dataclass(frozen=True, slots=True)
class Registered:
    pledge: Pledge
    instruction: Instruction


# --- asking (the bank or the pledgor) ---------------------------------------------------------------


def register(
    session: Session,
    actor: Actor,
    *,
    pledgor_account_id: UUID,
    borrower_party_id: UUID,
    loan: Loan,
    collateral: Selection,
    terms: Terms,
    pledgee_party_id: UUID | None = None,
    pboc_registration_no: str | None = None,
    bank_ref: str | None = None,
    hold_business_days: int = 5,
    window_days: int = 20,
) -> Registered:
    """A registration request. From a bank: nothing is held and nothing of the account is read until the
    pledgor consents. From the pledgor (a holder, for its own account, naming the bank): its units are held
    at once, and the request waits for the bank's consent."""
    principal = actor.principal
    authz.require_role(principal, Role.BANK, Role.HOLDER)
    assert principal.party_id is not None
    rules.check_loan(loan, exchange_day(actor.at))
    rules.check_terms(terms)
    code, quantity = rules.requested_units(collateral)
    ct = ledger.require_credit_type(session, code, field="collateral.credit_type")
    assert ct.id is not None
    account = ledger_repo.get_account(session, pledgor_account_id)
    pledgee = _pledgee(session, actor, account, pledgor_account_id, pledgee_party_id)
    assert account is not None
    borrower = ledger_repo.get_party(session, borrower_party_id)
    if borrower is None:
        raise NotFound("party", borrower_party_id, field="borrower_party_id")
    if borrower.kind not in (PartyKind.ENTERPRISE, PartyKind.BANK):
        raise InvalidInput("borrower_party_id", f"a {borrower.kind} party cannot borrow")
    rules.require_loan_free(session, principal, pledgee_party_id=pledgee, contract_no=loan.contract_no)
    rules.check_pledge_rate(
        session, credit_type_id=ct.id, terms=terms, outstanding=loan.principal, quantity=quantity,
        at=actor.at, window_days=window_days,
    )  # fmt: skip
    expires = add_business_days(actor.at, hold_business_days)
    pledge = Pledge(
        status=PledgeStatus.PENDING,
        pledgee_party_id=pledgee,
        pledgor_account_id=account.id,
        pledgor_party_id=account.party_id,
        borrower_party_id=borrower.id,
        contract_no=loan.contract_no,
        principal=loan.principal,
        outstanding_principal=loan.principal,
        currency=loan.currency,
        start_date=loan.start_date,
        maturity_date=loan.maturity_date,
        credit_type_id=ct.id,
        max_pledge_rate=terms.max_pledge_rate,
        warning_ratio=terms.warning_ratio,
        disposal_ratio=terms.disposal_ratio,
        valuation_method=terms.valuation_method,
        haircut=terms.haircut,
        pboc_registration_no=pboc_registration_no,
        bank_ref=bank_ref,
        created_at=actor.at,
        hold_expires_at=expires,
    )
    session.add(pledge)
    session.flush()
    instruction = _ask(session, actor, pledge, InstructionType.REGISTER, collateral, hold_expires_at=expires)
    return Registered(pledge, instruction)


def _pledgee(session: Session, actor: Actor, account: Any, account_id: UUID, named: UUID | None) -> UUID:
    """The lending bank of a new request, checking who may ask for which account. A bank learns only that
    an account id exists (it resolved it from the number and the credit code the borrower gave it)."""
    principal = actor.principal
    assert principal.party_id is not None
    if principal.role is Role.BANK:
        if named not in (None, principal.party_id):
            raise InvalidInput("pledgee_party_id", "a bank asks for its own loans")
        if account is None:
            raise NotFound("account", account_id, field="pledgor_account_id")
        if account.party_id == principal.party_id:
            raise InvalidInput("pledgor_account_id", "a bank cannot take a pledge of its own units")
        return principal.party_id
    if account is None or account.party_id != principal.party_id:  # a holder pledges only its own units
        raise NotFound("account", account_id, field="pledgor_account_id")
    if account.status != AccountStatus.ACTIVE:
        raise AccountClosed(account.id)
    if named is None:
        raise InvalidInput("pledgee_party_id", "name the lending bank")
    bank = ledger_repo.get_party(session, named)
    if bank is None or bank.kind != PartyKind.BANK:
        raise NotFound("bank", named, field="pledgee_party_id")
    return bank.id


def request(
    session: Session,
    actor: Actor,
    pledge_id: UUID,
    *,
    kind: InstructionType,
    selection: Selection = ALL,
    reason: str | None = None,
    outstanding_principal: Decimal | None = None,
    to_account_id: UUID | None = None,
    hold_business_days: int = 5,
) -> Instruction:
    """A top-up (the bank or the pledgor asks, the other consents), a release or a disposal (the bank)."""
    principal = actor.principal
    authz.require_role(principal, Role.BANK, Role.HOLDER)
    pledge = _lock_visible(session, actor, pledge_id)
    if not policy.is_pledgee(principal, pledge) and not (
        kind is InstructionType.TOP_UP and policy.is_pledgor(principal, pledge)
    ):
        raise Forbidden(
            "only the pledgee bank asks for this (the pledgor may offer a top-up)", role=principal.role.value
        )
    if kind not in REQUESTABLE.get(PledgeStatus(pledge.status), frozenset()):
        raise InvalidState(
            f"a {pledge.status} pledge takes no {kind.value} instruction", pledge_status=pledge.status
        )
    waiting = repo.open_instruction(session, pledge.id)
    if waiting is not None:
        raise InvalidState(
            f"instruction {waiting.id} ({waiting.type}) is still {waiting.status}",
            pending_instruction_id=str(waiting.id),
        )
    code = ledger_repo.get_credit_type_by_id(session, pledge.credit_type_id)
    assert code is not None
    selection = _same_type(selection, code.code)
    _check_request(session, pledge, kind, selection, outstanding_principal, to_account_id, code.code)
    expires = add_business_days(actor.at, hold_business_days) if kind in HOLDS_UNITS else None
    return _ask(
        session, actor, pledge, kind, selection, hold_expires_at=expires, reason=reason,
        outstanding_principal=outstanding_principal, to_account_id=to_account_id,
    )  # fmt: skip


def _check_request(
    session: Session,
    pledge: Pledge,
    kind: InstructionType,
    selection: Selection,
    outstanding_principal: Decimal | None,
    to_account_id: UUID | None,
    credit_type: str,
) -> None:
    if outstanding_principal is not None:
        if kind is not InstructionType.RELEASE:
            raise InvalidInput("outstanding_principal", "only a release reports repayment")
        if outstanding_principal > pledge.principal:
            raise InvalidInput("outstanding_principal", "cannot exceed the loan's principal")
    if kind is InstructionType.TOP_UP:
        rules.requested_units(selection, field="quantity")  # its shape only: no holdings are read
    if kind in (InstructionType.RELEASE, InstructionType.DISPOSE) and selection.quantity is not None:
        frozen = repo.frozen_quantity(session, pledge.id)
        if selection.quantity > frozen:
            raise InsufficientUnits(
                account_id=pledge.pledgor_account_id,
                credit_type=credit_type,
                status=BlockStatus.FROZEN,
                requested=selection.quantity,
                available=frozen,
            )
    if to_account_id is not None:
        if kind is not InstructionType.DISPOSE:
            raise InvalidInput("to_account_id", "only a disposal moves units to another account")
        target = ledger_repo.get_account(session, to_account_id)
        if target is None or target.party_id != pledge.pledgee_party_id:
            raise NotFound("account", to_account_id, field="to_account_id")


def _ask(
    session: Session,
    actor: Actor,
    pledge: Pledge,
    kind: InstructionType,
    selection: Selection,
    **fields: Any,
) -> Instruction:
    """Write the instruction and its `ask` event. A joint application waits for the other side; when the
    pledgor itself asks, its units are held now (a shortfall is the pledgor's to see)."""
    principal = actor.principal
    assert principal.party_id is not None
    joint = kind in NEEDS_CONSENT
    instruction = Instruction(
        pledge_id=pledge.id,
        type=kind,
        status=InstructionStatus.AWAITING_CONSENT if joint else InstructionStatus.PENDING,
        quantity=selection.quantity,
        blocks=[
            {"credit_type": b.credit_type, "serial_start": b.serial_start, "serial_end": b.serial_end}
            for b in selection.blocks
        ]
        or None,
        requested_by_party_id=principal.party_id,
        requested_by_key_id=principal.key_id,
        requested_by_operator=principal.operator,
        consent_party_id=policy.other_side(pledge, principal.party_id) if joint else None,
        created_at=actor.at,
        **fields,
    )
    session.add(instruction)
    session.flush()
    decisions.record(
        session, actor, pledge_id=pledge.id, instruction_id=instruction.id, kind=DecisionKind.ASK,
        reason=instruction.reason,
    )  # fmt: skip
    if joint and principal.party_id == pledge.pledgor_party_id:
        _hold(session, actor, pledge, instruction)
    return instruction


def consent(
    session: Session, actor: Actor, instruction_id: UUID, *, hold_business_days: int = 5
) -> Instruction:
    """The other party of a joint application agrees. When that is the pledgor, its units are held now;
    either way the request now waits for the exchange, with a fresh lapse time."""
    principal = actor.principal
    authz.require_role(principal, Role.BANK, Role.HOLDER)
    pledge, instruction = _lock_instruction(session, actor, instruction_id)
    _require_status(instruction, InstructionStatus.AWAITING_CONSENT)
    policy.require_consenter(principal, pledge, instruction)
    _require_not_lapsed(instruction, actor.at)
    if principal.party_id == pledge.pledgor_party_id:
        _hold(session, actor, pledge, instruction)
    instruction.consented_by = policy.decided_by(principal)
    instruction.consented_by_key_id = principal.key_id
    instruction.consented_at = actor.at
    instruction.hold_expires_at = add_business_days(actor.at, hold_business_days)
    if InstructionType(instruction.type) is InstructionType.REGISTER:
        pledge.hold_expires_at = instruction.hold_expires_at
    return _decide(session, actor, pledge, instruction, Decision.CONSENT)


def decline(session: Session, actor: Actor, instruction_id: UUID, *, reason: str) -> Instruction:
    """The other party of a joint application refuses; units the pledgor held for its own request go back."""
    authz.require_role(actor.principal, Role.BANK, Role.HOLDER)
    pledge, instruction = _lock_instruction(session, actor, instruction_id)
    _require_status(instruction, InstructionStatus.AWAITING_CONSENT)
    policy.require_consenter(actor.principal, pledge, instruction)
    return _decide(session, actor, pledge, instruction, Decision.DECLINE, reason=reason)


def cancel(session: Session, actor: Actor, instruction_id: UUID) -> Instruction:
    """The party that asked withdraws its request while it waits; held units go back to the pledgor."""
    authz.require_role(actor.principal, Role.BANK, Role.HOLDER)
    pledge, instruction = _lock_instruction(session, actor, instruction_id)
    _require_open(instruction)
    policy.require_asker(actor.principal, instruction)
    return _decide(session, actor, pledge, instruction, Decision.CANCEL)


# --- deciding (the exchange) ----------------------------------------------------------------------


def confirm(
    session: Session,
    actor: Actor,
    instruction_id: UUID,
    *,
    buyer_account_id: UUID | None = None,
    price: Decimal | None = None,
    proceeds: Decimal | None = None,
    window_days: int = 20,
) -> Instruction:
    """The exchange confirms. A registration or top-up only while the loan is within its terms at today's
    price; a disposal only by a second person, on the terms the first reviewed."""
    authz.require_role(actor.principal, Role.EXCHANGE, Role.SYSTEM)
    pledge, instruction = _lock_instruction(session, actor, instruction_id)
    kind = InstructionType(instruction.type)
    _require_status(instruction, InstructionStatus.PENDING)
    _require_not_lapsed(instruction, actor.at)
    offered = Offered(buyer_account_id, price, proceeds)
    if kind not in FOUR_EYES and not offered.empty:
        raise InvalidInput("buyer_account_id", "a buyer, price and proceeds belong to a disposal")
    if kind in FOUR_EYES:
        terms = _second_pair_of_eyes(session, actor, pledge, instruction, offered)
        if terms is None:
            return instruction  # reviewed: still pending, waiting for another person
        return _apply_disposal(session, actor, pledge, instruction, terms, window_days)
    if kind in HOLDS_UNITS:
        held, frozen = repo.units_of_pledge(session, pledge.id)
        judged = assessment.of_pledge(
            session, pledge, quantity=held + frozen, at=actor.at, window_days=window_days
        )
        if not judged.within_terms:
            raise CollateralShort(judged)
        moved = pledged.freeze(
            session,
            _for(actor, instruction, pledge),
            account_id=pledge.pledgor_account_id,
            pledge_id=pledge.id,
        )
        if kind is InstructionType.REGISTER:
            pledge.registration_no = repo.next_registration_no(session, actor.at.astimezone(EXCHANGE_TZ).year)
            pledge.confirmed_at = actor.at
            pledge.hold_expires_at = None
    else:
        moved = pledged.unfreeze(
            session, _for(actor, instruction, pledge), account_id=pledge.pledgor_account_id,
            pledge_id=pledge.id, selection=_selection_of(session, pledge, instruction), reason=instruction.reason,
        )  # fmt: skip
        if instruction.outstanding_principal is not None:
            pledge.outstanding_principal = instruction.outstanding_principal
    instruction.applied_quantity = moved.quantity
    return _confirmed(session, actor, pledge, instruction, window_days)


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
        session.flush()
        decisions.record(
            session, actor, pledge_id=pledge.id, instruction_id=instruction.id, kind=DecisionKind.REVIEW,
            terms=terms.as_dict(),
        )  # fmt: skip
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
    moved = pledged.dispose(
        session, _for(actor, instruction, pledge), account_id=pledge.pledgor_account_id, pledge_id=pledge.id,
        to_account_id=terms.to_account_id, selection=_selection_of(session, pledge, instruction),
        reason=instruction.reason,
    )  # fmt: skip
    instruction.to_account_id = terms.to_account_id
    instruction.price, instruction.proceeds = terms.price, terms.proceeds
    instruction.applied_quantity = moved.quantity
    return _confirmed(session, actor, pledge, instruction, window_days, terms=terms.as_dict())


def _confirmed(
    session: Session,
    actor: Actor,
    pledge: Pledge,
    instruction: Instruction,
    window_days: int,
    terms: dict[str, Any] | None = None,
) -> Instruction:
    """Close a confirmed instruction; value what is now pledged; issue the certificate that states it."""
    kind = InstructionType(instruction.type)
    decision = Decision.CONFIRM
    if kind in (InstructionType.RELEASE, InstructionType.DISPOSE) and repo.frozen_quantity(
        session, pledge.id
    ):
        decision = Decision.CONFIRM_PARTIAL
    closed = _decide(session, actor, pledge, instruction, decision, terms=terms)
    if pledge.status == PledgeStatus.ACTIVE:
        # The collateral changed: value it now (this is also the valuation at registration).
        valuation.revalue(session, now=actor.at, window_days=window_days, pledge_ids=[pledge.id])
    else:  # released or disposed: nothing is at risk any more
        alerts.clear_closed(session, pledge.id, now=actor.at)
    # The next certificate version (or the revocation of the last one) commits with the change it states.
    certify.on_confirmed(session, actor, pledge, closed)
    return closed


def reject(session: Session, actor: Actor, instruction_id: UUID, *, reason: str) -> Instruction:
    authz.require_role(actor.principal, Role.EXCHANGE, Role.SYSTEM)
    pledge, instruction = _lock_instruction(session, actor, instruction_id)
    _require_status(instruction, InstructionStatus.PENDING)
    return _decide(session, actor, pledge, instruction, Decision.REJECT, reason=reason)


def expire_lapsed(session: Session, actor: Actor, *, limit: int = 500) -> int:
    """Requests nobody consented to or confirmed in time: closed, held units back to the pledgor. A
    confirmed pledge never lapses: only instructions still waiting have a lapse time. Each request is
    closed in a savepoint of its own, so one that cannot be closed is skipped (and retried next run)
    while the others lapse."""
    done = 0
    for instruction_id in repo.lapsed_open(session, actor.at, limit):
        try:
            with session.begin_nested():
                pledge, instruction = _lock_instruction(session, actor, instruction_id)
                if instruction.status in OPEN:
                    why = (
                        "nobody consented in time"
                        if instruction.status == InstructionStatus.AWAITING_CONSENT
                        else "the exchange did not confirm in time"
                    )
                    _decide(session, actor, pledge, instruction, Decision.EXPIRE, reason=why)
                    done += 1
        except Exception:  # one request that cannot be closed never stops the others
            log.exception("could not lapse instruction %s; retried at the next run", instruction_id)
            session.expire_all()
    return done


# --- internals ------------------------------------------------------------------------------------


def _decide(
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
    if status is not InstructionStatus.CONFIRMED and status not in OPEN and _holds(pledge, instruction):
        pledged.release_hold(
            session, _for(actor, instruction, pledge), account_id=pledge.pledgor_account_id,
            pledge_id=pledge.id, reason=reason or status.value,
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
    session.flush()  # the pledge's new state (e.g. its registration number) and its status move together
    decisions.record(
        session, actor, pledge_id=pledge.id, instruction_id=instruction.id, kind=_TRAIL_KIND[decision],
        reason=reason, terms=terms,
    )  # fmt: skip
    return instruction


def _holds(pledge: Pledge, instruction: Instruction) -> bool:
    """Whether the instruction holds units now: it is of a kind that holds, and the pledgor has agreed
    (it asked itself, or consented). Before joint application every such request held at once."""
    if InstructionType(instruction.type) not in HOLDS_UNITS:
        return False
    return (
        instruction.status == InstructionStatus.PENDING
        or instruction.requested_by_party_id == pledge.pledgor_party_id
    )


def _hold(session: Session, actor: Actor, pledge: Pledge, instruction: Instruction) -> None:
    """Hold the units a joint application asks for, in the pledgor's account, on the pledgor's say."""
    account = ledger_repo.get_account(session, pledge.pledgor_account_id)
    assert account is not None
    if account.status != AccountStatus.ACTIVE:
        raise AccountClosed(account.id)
    code = ledger_repo.get_credit_type_by_id(session, pledge.credit_type_id)
    assert code is not None
    pledged.hold(
        session, _for(actor, instruction, pledge), account_id=pledge.pledgor_account_id, pledge_id=pledge.id,
        selection=_selection_of(session, pledge, instruction, code.code),
    )  # fmt: skip


def _lock_visible(session: Session, actor: Actor, pledge_id: UUID) -> Pledge:
    return policy.require_visible(actor.principal, repo.get_pledge(session, pledge_id, lock=True), pledge_id)


def _lock_instruction(session: Session, actor: Actor, instruction_id: UUID) -> tuple[Pledge, Instruction]:
    """Pledge first, then the instruction: the one lock order of every pledge operation."""
    found = repo.get_instruction(session, instruction_id)
    if found is None:
        raise NotFound("instruction", instruction_id)
    pledge = _lock_visible(session, actor, found.pledge_id)
    instruction = repo.get_instruction(session, instruction_id, lock=True)
    assert instruction is not None
    return pledge, instruction


def _require_status(instruction: Instruction, wanted: InstructionStatus) -> None:
    if instruction.status != wanted:
        raise InstructionNotOpen(instruction.id, instruction.status, wanted.value)


def _require_open(instruction: Instruction) -> None:
    if instruction.status not in OPEN:
        raise InstructionNotOpen(instruction.id, instruction.status, None)


def _require_not_lapsed(instruction: Instruction, at: datetime) -> None:
    if instruction.hold_expires_at is not None and instruction.hold_expires_at <= at:
        raise Lapsed(instruction.id, instruction.hold_expires_at)


def _for(actor: Actor, instruction: Instruction, pledge: Pledge) -> Actor:
    return actor.for_instruction(instruction.id, on_behalf_of=pledge.pledgee_party_id)


def _selection_of(
    session: Session, pledge: Pledge, instruction: Instruction, credit_type: str | None = None
) -> Selection:
    blocks = [
        SerialRange(b["credit_type"], b["serial_start"], b["serial_end"]) for b in instruction.blocks or []
    ]
    if blocks:
        return Selection(blocks=blocks)
    if instruction.quantity is not None:
        if credit_type is None:
            found = ledger_repo.get_credit_type_by_id(session, pledge.credit_type_id)
            assert found is not None
            credit_type = found.code
        return Selection(credit_type=credit_type, quantity=instruction.quantity)
    return Selection()


def _same_type(selection: Selection, credit_type: str) -> Selection:
    for n, block in enumerate(selection.blocks):
        if block.credit_type != credit_type:
            raise InvalidInput(f"blocks[{n}].credit_type", f"this pledge is of {credit_type}")
    if selection.credit_type not in (None, credit_type):
        raise InvalidInput("credit_type", f"this pledge is of {credit_type}")
    if selection.quantity is not None:
        return Selection(credit_type=credit_type, quantity=selection.quantity)
    return selection
