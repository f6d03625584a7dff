"""Asking: a registration or a top-up as a joint application (共同申请) — whichever of the pledgee bank and
the pledgor asks, the other consents or declines — and the bank's release, disposal and cancellation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlmodel import Session

from registry import authz, rows
from registry.audit import decisions
from registry.audit.decisions import DecisionKind
from registry.calendar import add_business_days, exchange_day
from registry.config import HOLD_BUSINESS_DAYS, VWAP_DAYS
from registry.errors import Forbidden, InvalidInput, InvalidState, NotFound
from registry.ledger import repository as ledger_repo
from registry.ledger.errors import AccountClosed, InsufficientUnits
from registry.ledger.models import AccountStatus, BlockStatus, PartyKind
from registry.ledger.service import ALL, Selection
from registry.pledge import policy, rules, steps
from registry.pledge import repository as repo
from registry.pledge.models import Instruction, Pledge
from registry.pledge.rules import Loan, Terms
from registry.pledge.states import (
    HOLDS_UNITS,
    NEEDS_CONSENT,
    REQUESTABLE,
    Decision,
    InstructionStatus,
    InstructionType,
    PledgeStatus,
)
from registry.principal import Actor, Role
from registry.valuation import service as valuation


@dataclass(frozen=True, slots=True)
class Registered:
    pledge: Pledge
    instruction: Instruction
    credit_type: str  # the pledge's credit type code


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
    hold_business_days: int = HOLD_BUSINESS_DAYS,
    window_days: int = VWAP_DAYS,
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
    # The loan's lock comes with the facts: keyed on the bank the request is for (a bank's own; the one a
    # pledgor names, which the checks below then require to be a bank), as require_loan_free keys it.
    lender = principal.party_id if principal.role is Role.BANK else pledgee_party_id
    known = repo.registration_facts(
        session, code=code, account_id=pledgor_account_id, borrower_id=borrower_party_id,
        named_id=pledgee_party_id, as_of=exchange_day(actor.at), window_days=window_days,
        loan_lock=repo.loan_lock_key(lender, loan.contract_no),
    )  # fmt: skip
    if known.credit_type_id is None:
        raise NotFound("credit type", code, field="collateral.credit_type")
    account = (
        _Account(known.account_id, known.account_party_id, known.account_status) if known.account_id else None
    )
    pledgee = _pledgee(actor, account, pledgor_account_id, pledgee_party_id, known)
    assert account is not None
    borrower = _borrower(known, borrower_party_id)
    rules.require_loan_free(
        session, principal, pledgee_party_id=pledgee, contract_no=loan.contract_no, locked=pledgee == lender
    )
    rules.check_pledge_rate(
        valuation.reference_of(known), terms=terms, outstanding=loan.principal, quantity=quantity,
    )  # fmt: skip
    expires = add_business_days(actor.at, hold_business_days)
    pledge = _new_pledge(actor, account, pledgee, borrower, known.credit_type_id, loan, terms, expires,
                         pboc_registration_no=pboc_registration_no, bank_ref=bank_ref)  # fmt: skip
    instruction = _ask(session, actor, pledge, InstructionType.REGISTER, collateral, hold_expires_at=expires)
    return Registered(pledge, instruction, code)


@dataclass(frozen=True, slots=True)
class _Account:
    """The pledgor's account as a registration reads it."""

    id: UUID
    party_id: UUID
    status: str


def _borrower(known: Any, party_id: UUID) -> UUID:
    """The borrower a registration names: a party that exists and may borrow."""
    if known.borrower_id is None:
        raise NotFound("party", party_id, field="borrower_party_id")
    if known.borrower_kind not in (PartyKind.ENTERPRISE, PartyKind.BANK):
        raise InvalidInput("borrower_party_id", f"a {known.borrower_kind} party cannot borrow")
    return known.borrower_id  # type: ignore[no-any-return]


def _new_pledge(actor: Actor, account: _Account, pledgee: UUID, borrower_id: UUID, credit_type_id: int, loan: Loan,
                terms: Terms, expires: datetime, *, pboc_registration_no: str | None, bank_ref: str | None
                ) -> Pledge:  # fmt: skip
    """The pending pledge a registration asks for, its loan and terms as given."""
    return rows.new(
        Pledge,
        status=PledgeStatus.PENDING,
        pledgee_party_id=pledgee,
        pledgor_account_id=account.id,
        pledgor_party_id=account.party_id,
        borrower_party_id=borrower_id,
        contract_no=loan.contract_no,
        principal=loan.principal,
        outstanding_principal=loan.principal,
        currency=loan.currency,
        start_date=loan.start_date,
        maturity_date=loan.maturity_date,
        credit_type_id=credit_type_id,
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


def _pledgee(
    actor: Actor, account: _Account | None, account_id: UUID, named: UUID | None, known: Any
) -> UUID:
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
    if known.named_id is None or known.named_kind != PartyKind.BANK:
        raise NotFound("bank", named, field="pledgee_party_id")
    return known.named_id  # type: ignore[no-any-return]


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
    hold_business_days: int = HOLD_BUSINESS_DAYS,
) -> Instruction:
    """A top-up (the bank or the pledgor asks, the other consents), a release or a disposal (the bank)."""
    principal = actor.principal
    authz.require_role(principal, Role.BANK, Role.HOLDER)
    pledge, waiting = steps.lock_visible(session, actor, pledge_id)
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
    if waiting is not None:  # the locking read predates its wait for the lock: as committed now
        waiting = repo.waiting_now(session, pledge.id)
    if waiting is not None:
        raise InvalidState(
            f"instruction {waiting.id} ({waiting.type}) is still {waiting.status}",
            pending_instruction_id=str(waiting.id),
        )
    code = repo.credit_type_code(session, pledge.credit_type_id)
    selection = steps.same_type(selection, code)
    _check_request(session, pledge, kind, selection, outstanding_principal, to_account_id, code)
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
    instruction = rows.new(
        Instruction,
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
    asked = decisions.event(
        actor, pledge_id=pledge.id, instruction_id=instruction.id, kind=DecisionKind.ASK,
        reason=instruction.reason,
    )  # fmt: skip
    # A registration's pledge is new too: both rows and the ask's event in one statement.
    rows.insert_new(
        session, *(() if kind is not InstructionType.REGISTER else (pledge,)), instruction, along=asked
    )
    if joint and principal.party_id == pledge.pledgor_party_id:
        steps.hold(session, actor, pledge, instruction)
    return instruction


def consent(
    session: Session, actor: Actor, instruction_id: UUID, *, hold_business_days: int = HOLD_BUSINESS_DAYS
) -> Instruction:
    """The other party of a joint application agrees. When that is the pledgor, its units are held now;
    either way the request now waits for the exchange, with a fresh lapse time."""
    principal = actor.principal
    authz.require_role(principal, Role.BANK, Role.HOLDER)
    pledge, instruction = steps.lock_instruction(session, actor, instruction_id)
    steps.require_status(instruction, InstructionStatus.AWAITING_CONSENT)
    policy.require_consenter(principal, pledge, instruction)
    steps.require_not_lapsed(instruction, actor.at)
    if principal.party_id == pledge.pledgor_party_id:
        steps.hold(session, actor, pledge, instruction)
    instruction.consented_by = policy.decided_by(principal)
    instruction.consented_by_key_id = principal.key_id
    instruction.consented_at = actor.at
    instruction.hold_expires_at = add_business_days(actor.at, hold_business_days)
    if InstructionType(instruction.type) is InstructionType.REGISTER:
        pledge.hold_expires_at = instruction.hold_expires_at
    return steps.decide(session, actor, pledge, instruction, Decision.CONSENT)


def decline(session: Session, actor: Actor, instruction_id: UUID, *, reason: str) -> Instruction:
    """The other party of a joint application refuses; units the pledgor held for its own request go back."""
    authz.require_role(actor.principal, Role.BANK, Role.HOLDER)
    pledge, instruction = steps.lock_instruction(session, actor, instruction_id)
    steps.require_status(instruction, InstructionStatus.AWAITING_CONSENT)
    policy.require_consenter(actor.principal, pledge, instruction)
    return steps.decide(session, actor, pledge, instruction, Decision.DECLINE, reason=reason)


def cancel(session: Session, actor: Actor, instruction_id: UUID) -> Instruction:
    """The party that asked withdraws its request while it waits; held units go back to the pledgor."""
    authz.require_role(actor.principal, Role.BANK, Role.HOLDER)
    pledge, instruction = steps.lock_instruction(session, actor, instruction_id)
    steps.require_open(instruction)
    policy.require_asker(actor.principal, instruction)
    return steps.decide(session, actor, pledge, instruction, Decision.CANCEL)
