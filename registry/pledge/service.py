"""The pledge lifecycle. Banks ask (register, top up, release, dispose), the exchange confirms or
rejects; each step is one transaction that locks the pledge, then its instruction, then the accounts.

Every instruction is decided at most once (the database refuses to change a decided one), and every
unit movement goes through the ledger's primitives, which write the audit trail naming the instruction,
the bank it was asked for and the operator who decided it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlmodel import Session

from registry import authz
from registry.certificate import service as certificates
from registry.errors import InvalidInput, InvalidState, NotFound
from registry.ledger import repository as ledger_repo
from registry.ledger import service as ledger
from registry.ledger.errors import AccountClosed, InsufficientUnits
from registry.ledger.models import PartyKind
from registry.ledger.service import ALL, Selection, SerialRange
from registry.pledge import repository as repo
from registry.pledge.calendar import EXCHANGE_TZ, add_business_days
from registry.pledge.errors import FourEyesRequired, PledgeRateExceeded
from registry.pledge.models import Instruction, Pledge
from registry.pledge.states import (
    CLOSED,
    FOUR_EYES,
    HOLDS_UNITS,
    REQUESTABLE,
    Decision,
    InstructionStatus,
    InstructionType,
    PledgeStatus,
    next_status,
)
from registry.principal import Actor, Principal, Role
from registry.valuation import service as valuation

MAX_PRINCIPAL = Decimal("1e12")


@dataclass(frozen=True, slots=True)
class Loan:
    contract_no: str
    principal: Decimal
    start_date: date
    maturity_date: date
    currency: str = "CNY"


@dataclass(frozen=True, slots=True)
class Terms:
    max_pledge_rate: Decimal
    warning_ratio: Decimal
    disposal_ratio: Decimal
    valuation_method: str = "lower_of"
    haircut: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Registered:
    pledge: Pledge
    instruction: Instruction


# --- asking (banks) -------------------------------------------------------------------------------


def register(
    session: Session,
    actor: Actor,
    *,
    pledgor_account_id: UUID,
    borrower_party_id: UUID,
    loan: Loan,
    collateral: Selection,
    terms: Terms,
    pboc_registration_no: str | None = None,
    bank_ref: str | None = None,
    hold_business_days: int = 5,
    window_days: int = 20,
) -> Registered:
    """A bank asks to pledge units of the pledgor's account for a loan. The units are held at once."""
    principal = actor.principal
    authz.require_role(principal, Role.BANK)
    assert principal.party_id is not None
    _check_loan(loan)
    _check_terms(terms)
    credit_type = _collateral_type(collateral)
    ct = ledger.require_credit_type(session, credit_type, field="collateral.credit_type")
    account = ledger_repo.get_account(session, pledgor_account_id)
    if account is None:
        raise NotFound("account", pledgor_account_id, field="pledgor_account_id")
    if account.status != "active":
        raise AccountClosed(account.id)
    if account.party_id == principal.party_id:
        raise InvalidInput("pledgor_account_id", "a bank cannot take a pledge of its own units")
    borrower = ledger_repo.get_party(session, borrower_party_id)
    if borrower is None:
        raise NotFound("party", borrower_party_id, field="borrower_party_id")
    if borrower.kind not in (PartyKind.ENTERPRISE, PartyKind.BANK):
        raise InvalidInput("borrower_party_id", f"a {borrower.kind} party cannot borrow")
    assert ct.id is not None
    expires = add_business_days(actor.at, hold_business_days)
    pledge = Pledge(
        status=PledgeStatus.PENDING,
        pledgee_party_id=principal.party_id,
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
    instruction = _new_instruction(
        session, actor, pledge, InstructionType.REGISTER, collateral, hold_expires_at=expires
    )
    held = ledger.hold(
        session,
        _for(actor, instruction, pledge),
        account_id=account.id,
        pledge_id=pledge.id,
        selection=collateral,
    )
    _check_pledge_rate(session, pledge, held.quantity, actor.at, window_days)
    return Registered(pledge, instruction)


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
    """A top-up, release or disposal, asked by the pledgee bank for the exchange to confirm."""
    authz.require_role(actor.principal, Role.BANK)
    pledge = _lock_visible(session, actor.principal, pledge_id)
    if kind not in REQUESTABLE.get(PledgeStatus(pledge.status), frozenset()):
        raise InvalidState(
            f"a {pledge.status} pledge takes no {kind.value} instruction", pledge_status=pledge.status
        )
    waiting = repo.pending_instruction(session, pledge.id)
    if waiting is not None:
        raise InvalidState(
            f"instruction {waiting.id} ({waiting.type}) is still waiting for the exchange",
            pending_instruction_id=str(waiting.id),
        )
    code = ledger_repo.get_credit_type_by_id(session, pledge.credit_type_id)
    assert code is not None
    selection = _same_type(selection, code.code)
    if outstanding_principal is not None:
        if kind is not InstructionType.RELEASE:
            raise InvalidInput("outstanding_principal", "only a release reports repayment")
        if outstanding_principal > pledge.principal:
            raise InvalidInput("outstanding_principal", "cannot exceed the loan's principal")
    if kind is InstructionType.TOP_UP and selection.everything:
        raise InvalidInput("quantity", "say how many units, or which blocks, to add")
    if kind in (InstructionType.RELEASE, InstructionType.DISPOSE) and selection.quantity is not None:
        frozen = repo.frozen_quantity(session, pledge.id)
        if selection.quantity > frozen:
            raise InsufficientUnits(
                account_id=pledge.pledgor_account_id,
                credit_type=code.code,
                status="frozen",
                requested=selection.quantity,
                available=frozen,
            )
    if to_account_id is not None:
        if kind is not InstructionType.DISPOSE:
            raise InvalidInput("to_account_id", "only a disposal moves units to another account")
        target = ledger_repo.get_account(session, to_account_id)
        if target is None or target.party_id != pledge.pledgee_party_id:
            raise NotFound("account", to_account_id, field="to_account_id")
    expires = add_business_days(actor.at, hold_business_days) if kind in HOLDS_UNITS else None
    instruction = _new_instruction(
        session,
        actor,
        pledge,
        kind,
        selection,
        hold_expires_at=expires,
        reason=reason,
        outstanding_principal=outstanding_principal,
        to_account_id=to_account_id,
    )
    if kind is InstructionType.TOP_UP:
        ledger.hold(
            session,
            _for(actor, instruction, pledge),
            account_id=pledge.pledgor_account_id,
            pledge_id=pledge.id,
            selection=selection,
        )
    return instruction


def cancel(session: Session, actor: Actor, instruction_id: UUID) -> Instruction:
    """The bank withdraws its own instruction while it waits; held units go back to the pledgor."""
    authz.require_role(actor.principal, Role.BANK)
    pledge, instruction = _lock_instruction(session, actor.principal, instruction_id)
    return _close(session, actor, pledge, instruction, Decision.CANCEL, InstructionStatus.CANCELLED, None)


# --- deciding (the exchange) ----------------------------------------------------------------------


def confirm(
    session: Session,
    actor: Actor,
    instruction_id: UUID,
    *,
    buyer_account_id: UUID | None = None,
    price: Decimal | None = None,
    proceeds: Decimal | None = None,
) -> Instruction:
    authz.require_role(actor.principal, Role.EXCHANGE, Role.SYSTEM)
    pledge, instruction = _lock_instruction(session, actor.principal, instruction_id)
    kind = InstructionType(instruction.type)
    _require_pending(instruction)
    if instruction.hold_expires_at is not None and instruction.hold_expires_at <= actor.at:
        raise InvalidState(
            f"instruction {instruction.id} lapsed at {instruction.hold_expires_at.isoformat()}"
        )
    if kind is not InstructionType.DISPOSE and (
        buyer_account_id or price is not None or proceeds is not None
    ):
        raise InvalidInput("buyer_account_id", "a buyer, price and proceeds belong to a disposal")
    operator = _operator(actor.principal)
    if kind in FOUR_EYES:
        if instruction.reviewed_by is None:
            instruction.reviewed_by, instruction.reviewed_at = operator, actor.at
            session.flush()
            return instruction  # first pair of eyes: still pending, waiting for a second operator
        if instruction.reviewed_by == operator:
            raise FourEyesRequired(operator)
    stamped = _for(actor, instruction, pledge)
    account = pledge.pledgor_account_id
    credit_type = ledger_repo.get_credit_type_by_id(session, pledge.credit_type_id)
    assert credit_type is not None
    selection = _selection_of(instruction, credit_type.code)
    decision = Decision.CONFIRM
    if kind in (InstructionType.REGISTER, InstructionType.TOP_UP):
        moved = ledger.freeze(session, stamped, account_id=account, pledge_id=pledge.id)
        if kind is InstructionType.REGISTER:
            pledge.registration_no = repo.next_registration_no(session, actor.at.astimezone(EXCHANGE_TZ).year)
            pledge.confirmed_at = actor.at
            pledge.hold_expires_at = None
    elif kind is InstructionType.RELEASE:
        moved = ledger.unfreeze(
            session,
            stamped,
            account_id=account,
            pledge_id=pledge.id,
            selection=selection,
            reason=instruction.reason,
        )
        if instruction.outstanding_principal is not None:
            pledge.outstanding_principal = instruction.outstanding_principal
    else:
        target = _disposal_target(session, pledge, instruction, buyer_account_id)
        moved = ledger.dispose(
            session,
            stamped,
            account_id=account,
            pledge_id=pledge.id,
            to_account_id=target,
            selection=selection,
            reason=instruction.reason,
        )
        instruction.to_account_id = target
        instruction.price = price
        instruction.proceeds = (
            proceeds if proceeds is not None else (price * moved.quantity if price is not None else None)
        )
    if kind in (InstructionType.RELEASE, InstructionType.DISPOSE) and repo.frozen_quantity(
        session, pledge.id
    ):
        decision = Decision.CONFIRM_PARTIAL
    instruction.applied_quantity = moved.quantity
    closed = _close(session, actor, pledge, instruction, decision, InstructionStatus.CONFIRMED, None)
    if pledge.status == PledgeStatus.ACTIVE:
        # The collateral changed: value it now (this is also the valuation at registration).
        valuation.revalue(session, now=actor.at, pledge_ids=[pledge.id])
    # The next certificate version (or the revocation of the last one) commits with the change it states.
    certificates.on_confirmed(session, actor, pledge, closed)
    return closed


def reject(session: Session, actor: Actor, instruction_id: UUID, *, reason: str) -> Instruction:
    authz.require_role(actor.principal, Role.EXCHANGE, Role.SYSTEM)
    pledge, instruction = _lock_instruction(session, actor.principal, instruction_id)
    return _close(session, actor, pledge, instruction, Decision.REJECT, InstructionStatus.REJECTED, reason)


def expire_lapsed(session: Session, actor: Actor, *, limit: int = 500) -> int:
    """Unconfirmed requests whose hold lapsed: closed, held units back to the pledgor. A confirmed
    pledge never lapses: only instructions that hold units have a lapse time."""
    done = 0
    for instruction_id in repo.expired_pending(session, actor.at, limit):
        pledge, instruction = _lock_instruction(session, actor.principal, instruction_id)
        if instruction.status == InstructionStatus.PENDING:
            _close(
                session,
                actor,
                pledge,
                instruction,
                Decision.EXPIRE,
                InstructionStatus.EXPIRED,
                "the exchange did not confirm in time",
            )
            done += 1
    return done


# --- reading --------------------------------------------------------------------------------------


def require_pledge(session: Session, principal: Principal, pledge_id: UUID) -> Pledge:
    pledge = repo.get_pledge(session, pledge_id)
    if pledge is None or not can_see(principal, pledge):
        raise NotFound("pledge", pledge_id)
    return pledge


def require_instruction(session: Session, principal: Principal, instruction_id: UUID) -> Instruction:
    instruction = repo.get_instruction(session, instruction_id)
    if instruction is None:
        raise NotFound("instruction", instruction_id)
    require_pledge(session, principal, instruction.pledge_id)
    return instruction


def can_see(principal: Principal, pledge: Pledge) -> bool:
    """Banks see their own pledges; holders those they pledged or borrow against; the exchange and
    auditors all of them."""
    if principal.sees_everything:
        return True
    if principal.role is Role.BANK:
        return pledge.pledgee_party_id == principal.party_id
    if principal.role is Role.HOLDER:
        return principal.party_id in (pledge.pledgor_party_id, pledge.borrower_party_id)
    return False


def _scope(principal: Principal) -> dict[str, UUID | None]:
    if principal.sees_everything:
        return {"bank": None, "holder": None}
    if principal.role is Role.BANK:
        return {"bank": principal.party_id, "holder": None}
    return {"bank": None, "holder": principal.party_id}


def list_pledges(
    session: Session, principal: Principal, *, status: str | None, after: UUID | None, limit: int
) -> list[Pledge]:
    return repo.pledges_page(session, status=status, after=after, limit=limit, **_scope(principal))


def list_instructions(
    session: Session,
    principal: Principal,
    *,
    status: str | None,
    after: int | None,
    limit: int,
) -> list[Instruction]:
    return repo.instructions_page(session, status=status, after=after, limit=limit, **_scope(principal))


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


# --- internals ------------------------------------------------------------------------------------


def _close(
    session: Session,
    actor: Actor,
    pledge: Pledge,
    instruction: Instruction,
    decision: Decision,
    status: InstructionStatus,
    reason: str | None,
) -> Instruction:
    """Decide a pending instruction once, lift its hold if it does not go through, move the pledge."""
    _require_pending(instruction)
    kind = InstructionType(instruction.type)
    after = next_status(PledgeStatus(pledge.status), kind, decision)
    if after is None:
        raise InvalidState(f"a {pledge.status} pledge cannot {decision.value} a {kind.value} instruction")
    if kind in HOLDS_UNITS and status is not InstructionStatus.CONFIRMED:
        ledger.release_hold(
            session,
            _for(actor, instruction, pledge),
            account_id=pledge.pledgor_account_id,
            pledge_id=pledge.id,
            reason=reason or status.value,
        )
    instruction.status = status
    instruction.decided_by = _operator(actor.principal)
    instruction.decided_by_key_id = actor.principal.key_id
    instruction.decided_at = actor.at
    instruction.decision_reason = reason
    if after != pledge.status:
        pledge.status = after
        if after in CLOSED:
            pledge.closed_at = actor.at
            pledge.hold_expires_at = None
    session.flush()
    return instruction


def _new_instruction(
    session: Session, actor: Actor, pledge: Pledge, kind: InstructionType, selection: Selection, **fields: Any
) -> Instruction:
    principal = actor.principal
    assert principal.party_id is not None
    instruction = Instruction(
        pledge_id=pledge.id,
        type=kind,
        status=InstructionStatus.PENDING,
        quantity=selection.quantity,
        blocks=[
            {"credit_type": b.credit_type, "serial_start": b.serial_start, "serial_end": b.serial_end}
            for b in selection.blocks
        ]
        or None,
        requested_by_party_id=principal.party_id,
        requested_by_key_id=principal.key_id,
        requested_by_operator=principal.operator,
        created_at=actor.at,
        **fields,
    )
    session.add(instruction)
    session.flush()
    return instruction


def _lock_visible(session: Session, principal: Principal, pledge_id: UUID) -> Pledge:
    pledge = repo.get_pledge(session, pledge_id, lock=True)
    if pledge is None or not can_see(principal, pledge):
        raise NotFound("pledge", pledge_id)
    return pledge


def _lock_instruction(
    session: Session, principal: Principal, instruction_id: UUID
) -> tuple[Pledge, Instruction]:
    """Pledge first, then the instruction: the one lock order of every pledge operation."""
    found = repo.get_instruction(session, instruction_id)
    if found is None:
        raise NotFound("instruction", instruction_id)
    pledge = _lock_visible(session, principal, found.pledge_id)
    instruction = repo.get_instruction(session, instruction_id, lock=True)
    assert instruction is not None
    return pledge, instruction


def _disposal_target(session: Session, pledge: Pledge, instruction: Instruction, buyer: UUID | None) -> UUID:
    """A buyer named by the exchange (auction), else the account the bank named, else the bank's first."""
    if buyer is not None:
        if ledger_repo.get_account(session, buyer) is None:
            raise NotFound("account", buyer, field="buyer_account_id")
        return buyer
    target = instruction.to_account_id or repo.first_account_of(session, pledge.pledgee_party_id)
    if target is None:
        raise InvalidState("the pledgee bank has no registry account to receive the units; name a buyer")
    return target


def _require_pending(instruction: Instruction) -> None:
    if instruction.status != InstructionStatus.PENDING:
        raise InvalidState(
            f"instruction {instruction.id} is already {instruction.status}",
            instruction_status=instruction.status,
        )


def _for(actor: Actor, instruction: Instruction, pledge: Pledge) -> Actor:
    return actor.for_instruction(instruction.id, on_behalf_of=pledge.pledgee_party_id)


def _operator(principal: Principal) -> str:
    return principal.operator or f"key:{principal.key_id}"


def _selection_of(instruction: Instruction, credit_type: str) -> Selection:
    blocks = [
        SerialRange(b["credit_type"], b["serial_start"], b["serial_end"]) for b in instruction.blocks or []
    ]
    if blocks:
        return Selection(blocks=blocks)
    if instruction.quantity is not None:
        return Selection(credit_type=credit_type, quantity=instruction.quantity)
    return Selection()


def _collateral_type(collateral: Selection) -> str:
    if collateral.everything:
        raise InvalidInput("collateral", "say how many units, or which blocks, to pledge")
    types = {b.credit_type for b in collateral.blocks} | (
        {collateral.credit_type} if collateral.credit_type else set()
    )
    if len(types) != 1:
        raise InvalidInput("collateral", "one pledge takes units of one credit type")
    return types.pop()


def _same_type(selection: Selection, credit_type: str) -> Selection:
    for n, block in enumerate(selection.blocks):
        if block.credit_type != credit_type:
            raise InvalidInput(f"blocks[{n}].credit_type", f"this pledge is of {credit_type}")
    if selection.credit_type not in (None, credit_type):
        raise InvalidInput("credit_type", f"this pledge is of {credit_type}")
    if selection.quantity is not None:
        return Selection(credit_type=credit_type, quantity=selection.quantity)
    return selection


def _check_pledge_rate(
    session: Session, pledge: Pledge, quantity: int, at: datetime, window_days: int
) -> None:
    """Principal / collateral value at today's reference price, against the lender's cap. Without any
    price for the credit type (e.g. a new local credit before its first print) there is nothing to check."""
    ref = valuation.reference(session, pledge.credit_type_id, valuation.exchange_day(at), window_days)
    price, _ = ref.price(pledge.valuation_method)
    if price is None:
        return
    value = (quantity * price * (1 - pledge.haircut)).quantize(Decimal("0.01"))
    rate = (pledge.principal / value).quantize(Decimal("0.0001")) if value else Decimal("Infinity")
    if rate > pledge.max_pledge_rate:
        raise PledgeRateExceeded(pledge_rate=rate, maximum=pledge.max_pledge_rate, price=price, value=value)


def _check_loan(loan: Loan) -> None:
    if loan.currency != "CNY":
        raise InvalidInput("loan.currency", "loans are in CNY")
    if not Decimal(0) < loan.principal <= MAX_PRINCIPAL:
        raise InvalidInput("loan.principal", "principal must be positive (and at most 10^12 CNY)")
    if loan.maturity_date <= loan.start_date:
        raise InvalidInput("loan.maturity_date", "maturity must come after the start date")


def _check_terms(terms: Terms) -> None:
    if not Decimal(0) < terms.max_pledge_rate <= 1:
        raise InvalidInput("terms.max_pledge_rate", "a pledge rate is a fraction in (0, 1], e.g. 0.70")
    if not Decimal(0) < terms.disposal_ratio < terms.warning_ratio <= 10:
        raise InvalidInput(
            "terms.disposal_ratio",
            "coverage lines need 0 < disposal_ratio < warning_ratio <= 10, e.g. 1.10 and 1.30",
        )
    if terms.valuation_method not in ("vwap", "last_close", "lower_of"):
        raise InvalidInput("terms.valuation_method", "one of vwap, last_close, lower_of")
    if not Decimal(0) <= terms.haircut < 1:
        raise InvalidInput("terms.haircut", "a haircut is a fraction in [0, 1)")


def queue(session: Session, principal: Principal, *, limit: int = 100) -> list[Any]:
    """The back office's queue with the pledgor's holdings beside each request (exchange, auditor)."""
    authz.require_role(principal, Role.EXCHANGE, Role.AUDITOR)
    return repo.queue(session, limit)


def search(session: Session, principal: Principal, query: str) -> list[Pledge]:
    query = query.strip()
    if not query:
        return []
    if len(query) > 100:
        raise InvalidInput("q", "at most 100 characters")
    scope = _scope(principal)
    return repo.search(session, query, bank=scope["bank"], holder=scope["holder"])
