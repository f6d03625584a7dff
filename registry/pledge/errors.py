from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

from registry.errors import InvalidState, RegistryError
from registry.money import money_text, ratio_text
from registry.pledge.states import OPEN

if TYPE_CHECKING:
    from registry.pledge.assessment import Assessment


class FourEyesRequired(InvalidState):
    """The operator who first reviewed a disposal cannot also be the one who confirms it."""

    message = "Four eyes: {reviewed_by} reviewed this disposal; another operator must confirm it."

    def __init__(self, operator: str) -> None:
        super().__init__(
            f"four eyes: {operator} reviewed this disposal; another exchange operator must confirm it",
            reviewed_by=operator,
        )


class PledgeRateExceeded(RegistryError):
    """The loan is too large for the collateral at today's reference price."""

    code = "pledge_rate_exceeded"
    title = "Pledge rate above the lender's maximum"
    message = "The pledge rate {pledge_rate} is above the lender's maximum {max_pledge_rate}."

    def __init__(self, *, pledge_rate: Decimal, maximum: Decimal, price: Decimal, value: Decimal) -> None:
        super().__init__(
            f"pledge rate {pledge_rate} (principal / collateral value {value} at {price} per unit) is above "
            f"the maximum {maximum}",
            field="loan.principal",
            pledge_rate=ratio_text(pledge_rate),
            max_pledge_rate=ratio_text(maximum),
            price=money_text(price),
            collateral_value=money_text(value),
        )


class CollateralShort(RegistryError):
    """At today's reference price the loan is past the lender's cap or its disposal line: the exchange does
    not confirm on these figures (the bank can top up, or ask again)."""

    code = "collateral_insufficient"
    title = "The collateral does not cover the loan at today's price"
    message = (
        "At today's price the loan is outside the lender's terms: pledge rate {pledge_rate} "
        "(maximum {max_pledge_rate}), coverage {coverage_ratio} (disposal line {disposal_ratio})."
    )

    def __init__(self, assessment: Assessment) -> None:
        a = assessment
        if a.pledge_rate is None or a.pledge_rate > a.max_pledge_rate:
            why = f"pledge rate {a.pledge_rate} is above the maximum {a.max_pledge_rate}"
        else:
            why = f"coverage {a.coverage_ratio} is below the disposal line {a.disposal_ratio}"
        super().__init__(
            f"at today's reference price {a.price} ({a.price_date}) {a.quantity} units are worth "
            f"{a.collateral_value}: {why}",
            quantity=a.quantity,
            price=_text(a.price, money_text),
            price_date=a.price_date.isoformat() if a.price_date else None,
            collateral_value=_text(a.collateral_value, money_text),
            pledge_rate=_text(a.pledge_rate, ratio_text),
            max_pledge_rate=ratio_text(a.max_pledge_rate),
            coverage_ratio=_text(a.coverage_ratio, ratio_text),
            disposal_ratio=ratio_text(a.disposal_ratio),
            level=a.level,
        )


class LoanAlreadyPledged(RegistryError):
    """One open pledge per loan: a bank's second request for the same contract."""

    code = "loan_already_pledged"
    title = "This loan already has an open pledge"
    message = "This loan contract already has an open pledge."

    def __init__(self, contract_no: str, pledge_id: UUID | None) -> None:
        named = f" ({pledge_id})" if pledge_id else ""
        super().__init__(
            f"loan contract {contract_no} already has an open pledge{named}; top it up, or close it first",
            field="loan.contract_no",
            pledge_id=str(pledge_id) if pledge_id else None,
        )


class InstructionNotOpen(InvalidState):
    """An instruction already decided (or not yet at the step asked for)."""

    message = "This instruction is {instruction_status}."

    def __init__(self, instruction_id: UUID, status: str, wanted: str | None) -> None:
        decided = status not in OPEN
        how = f"already {status}" if decided else f"{status}" + (f", not {wanted}" if wanted else "")
        super().__init__(f"instruction {instruction_id} is {how}", instruction_status=status)


class Lapsed(InvalidState):
    """A request nobody consented to or confirmed in time: only the lapse job may close it now."""

    message = "This request lapsed at {lapsed_at}."

    def __init__(self, instruction_id: UUID, at: datetime) -> None:
        super().__init__(f"instruction {instruction_id} lapsed at {at.isoformat()}", lapsed_at=at.isoformat())


def _text(value: Decimal | None, write: Callable[[Decimal], str]) -> str | None:
    return None if value is None else write(value)
