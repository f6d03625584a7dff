"""What a pledge request must be before anything is written: sane loan terms, a well-formed collateral
selection, a pledge rate within the lender's cap, and no other open pledge for the same loan.

None of these checks reads the pledgor's holdings: what a bank may learn before the pledgor has agreed is
exactly what it sent (registration is a joint application; see service.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

from sqlmodel import Session

from registry.db import run
from registry.errors import InvalidInput
from registry.ledger.blocks import normalize_ranges
from registry.ledger.models import SERIAL_MAX
from registry.ledger.service import MAX_QUANTITY, Selection
from registry.pledge import assessment, policy
from registry.pledge import repository as repo
from registry.pledge.errors import LoanAlreadyPledged, PledgeRateExceeded
from registry.pledge.models import MAX_LINE_RATIO
from registry.principal import Principal
from registry.valuation import service as valuation
from registry.valuation.models import ValuationMethod

# Loan bounds: a pledge loan is at least 1,000 CNY (below that coverage ratios stop meaning anything, and
# the figures of one absurd loan must not reach every job), dated within the registry's era, with a term of
# at most 30 years, not yet matured when it is pledged and not starting more than a year ahead.
MIN_PRINCIPAL = Decimal("1000.00")
MAX_PRINCIPAL = Decimal("1e12")
EARLIEST_DATE = date(2000, 1, 1)
MAX_TERM = timedelta(days=366 * 30)
MAX_START_AHEAD = timedelta(days=366)


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
    valuation_method: ValuationMethod = ValuationMethod.LOWER_OF
    haircut: Decimal = Decimal(0)


def check_loan(loan: Loan, today: date) -> None:
    if loan.currency != "CNY":
        raise InvalidInput("loan.currency", "loans are in CNY")
    if not MIN_PRINCIPAL <= loan.principal <= MAX_PRINCIPAL:
        raise InvalidInput("loan.principal", f"a principal is between {MIN_PRINCIPAL} and 10^12 CNY")
    if loan.start_date < EARLIEST_DATE or loan.start_date > today + MAX_START_AHEAD:
        raise InvalidInput("loan.start_date", f"a loan starts between {EARLIEST_DATE} and a year from today")
    if loan.maturity_date <= loan.start_date:
        raise InvalidInput("loan.maturity_date", "maturity must come after the start date")
    if loan.maturity_date - loan.start_date > MAX_TERM:
        raise InvalidInput("loan.maturity_date", "a loan's term is at most 30 years")
    if loan.maturity_date <= today:
        raise InvalidInput("loan.maturity_date", "the loan has already matured")


def check_terms(terms: Terms) -> None:
    if not Decimal(0) < terms.max_pledge_rate <= 1:
        raise InvalidInput("terms.max_pledge_rate", "a pledge rate is a fraction in (0, 1], e.g. 0.70")
    if not Decimal(0) < terms.disposal_ratio < terms.warning_ratio <= MAX_LINE_RATIO:
        raise InvalidInput(
            "terms.disposal_ratio",
            f"coverage lines need 0 < disposal_ratio < warning_ratio <= {MAX_LINE_RATIO}, e.g. 1.10 and 1.30",
        )
    if terms.valuation_method not in frozenset(ValuationMethod):  # StrEnum: its members equal their values
        raise InvalidInput("terms.valuation_method", f"one of {', '.join(ValuationMethod)}")
    if not Decimal(0) <= terms.haircut < 1:
        raise InvalidInput("terms.haircut", "a haircut is a fraction in [0, 1)")


def requested_units(selection: Selection, *, field: str = "collateral") -> tuple[str, int]:
    """The credit type and number of units a request asks for, from the request alone: named blocks are
    checked for shape (in range, not overlapping), never against what anyone holds."""
    if selection.everything:
        raise InvalidInput(field, "say how many units, or which blocks")
    if selection.quantity is not None and selection.blocks:
        raise InvalidInput(field, "give either a quantity or blocks, not both")
    types = {b.credit_type for b in selection.blocks} | (
        {selection.credit_type} if selection.credit_type else set()
    )
    if len(types) != 1:
        raise InvalidInput(field, "one pledge takes units of one credit type")
    ranges = []
    for n, block in enumerate(selection.blocks):
        if not 1 <= block.serial_start <= block.serial_end <= SERIAL_MAX:
            raise InvalidInput(f"{field}.blocks[{n}]", "need 1 <= serial_start <= serial_end <= 2^40-1")
        ranges.append((block.serial_start, block.serial_end))
    quantity = selection.quantity if selection.quantity is not None else sum(e - s + 1 for s, e in ranges)
    if ranges and sum(e - s + 1 for s, e in normalize_ranges(ranges)) != quantity:
        raise InvalidInput(f"{field}.blocks", "the blocks overlap each other")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput(f"{field}.quantity", f"quantity must be between 1 and {MAX_QUANTITY}")
    return types.pop(), quantity


def check_pledge_rate(
    reference: valuation.Reference, *, terms: Terms, outstanding: Decimal, quantity: int
) -> None:
    """Principal / value of the requested units at today's reference price (`reference`, as of the
    exchange day of the request), against the lender's cap. No print at all for the credit type (a new
    local credit) leaves nothing to check."""
    judged = assessment.assess(
        reference,
        method=terms.valuation_method,
        haircut=terms.haircut,
        outstanding=outstanding,
        quantity=quantity,
        max_pledge_rate=terms.max_pledge_rate,
        warning_ratio=terms.warning_ratio,
        disposal_ratio=terms.disposal_ratio,
    )
    if judged.price is None or judged.collateral_value is None:
        return
    if judged.pledge_rate is None or judged.pledge_rate > terms.max_pledge_rate:
        raise PledgeRateExceeded(
            pledge_rate=judged.pledge_rate or Decimal("Infinity"),
            maximum=terms.max_pledge_rate,
            price=judged.price,
            value=judged.collateral_value,
        )


def require_loan_free(
    session: Session, principal: Principal, *, pledgee_party_id: UUID, contract_no: str, locked: bool = False
) -> None:
    """One open pledge per loan. Requests for the same loan queue on a transaction lock (taken here, or
    already by the caller's earlier statement: `locked`), so two racing requests cannot both pass; the
    unique index uq_pledge_open_loan is the last word. The existing pledge is named only to a caller who
    may see it. The check is a statement after the lock's: it sees what a request it waited for committed."""
    if not locked:
        run(
            session,
            f"SELECT {repo.LOAN_LOCK_SQL}",
            {"loan": repo.loan_lock_key(pledgee_party_id, contract_no)},
        )
    existing = repo.open_pledge_for_loan(session, pledgee_party_id, contract_no)
    if existing is not None:
        raise LoanAlreadyPledged(contract_no, existing.id if policy.can_see(principal, existing) else None)
