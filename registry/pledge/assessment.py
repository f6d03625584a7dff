"""A pledge (or a request) valued at today's reference price, as the bank asks and the exchange confirms.

Confirmation is a decision on today's facts: a registration or top-up is confirmed only while the loan
is within the lender's maximum pledge rate, and above its disposal line, at the current reference price.
The same figures are what the back office's queue shows beside each request.

value = units × price × (1 − haircut), to the fen; pledge_rate = outstanding / value; coverage = value /
outstanding; level: disposal below the disposal line, warning below the warning line, else ok — the
formulas of the daily revaluation (registry/valuation/service.py), which stores them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlmodel import Session

from registry.calendar import exchange_day
from registry.pledge.models import Pledge
from registry.valuation import service as valuation
from registry.valuation.models import ValuationLevel, ValuationMethod


@dataclass(frozen=True, slots=True)
class Assessment:
    quantity: int
    price: Decimal | None  # None: the credit type has no print at all, so nothing can be valued
    price_date: date | None
    stale: bool
    collateral_value: Decimal | None
    pledge_rate: Decimal | None  # None when there is no value, or the value is 0
    coverage_ratio: Decimal | None
    level: ValuationLevel | None
    max_pledge_rate: Decimal
    disposal_ratio: Decimal

    @property
    def within_terms(self) -> bool:
        """What the exchange may confirm on: no price means nothing to check (the queue says so)."""
        if self.price is None:
            return True
        over_cap = self.pledge_rate is None or self.pledge_rate > self.max_pledge_rate
        return not over_cap and self.level != ValuationLevel.DISPOSAL


def assess(
    reference: valuation.Reference,
    *,
    method: ValuationMethod,
    haircut: Decimal,
    outstanding: Decimal,
    quantity: int,
    max_pledge_rate: Decimal,
    warning_ratio: Decimal,
    disposal_ratio: Decimal,
) -> Assessment:
    price, price_date = reference.price(method)
    value = rate = coverage = None
    if price is not None:
        made = valuation.figures(quantity=quantity, price=price, haircut=haircut, outstanding=outstanding)
        value, rate, coverage = made.collateral_value, made.pledge_rate, made.coverage_ratio
    level = valuation.level(value, outstanding, warning_ratio=warning_ratio, disposal_ratio=disposal_ratio)
    return Assessment(
        quantity=quantity,
        price=price,
        price_date=price_date,
        stale=reference.stale,
        collateral_value=value,
        pledge_rate=rate,
        coverage_ratio=coverage,
        level=level,
        max_pledge_rate=max_pledge_rate,
        disposal_ratio=disposal_ratio,
    )


def of_pledge(
    session: Session,
    pledge: Pledge,
    *,
    quantity: int,
    at: datetime,
    window_days: int,
    reference: valuation.Reference | None = None,
) -> Assessment:
    """The pledge's loan against `quantity` units at the reference price of the exchange day of `at`."""
    ref = reference or valuation.reference(session, pledge.credit_type_id, exchange_day(at), window_days)
    return assess(
        ref,
        method=pledge.valuation_method,
        haircut=pledge.haircut,
        outstanding=pledge.outstanding_principal,
        quantity=quantity,
        max_pledge_rate=pledge.max_pledge_rate,
        warning_ratio=pledge.warning_ratio,
        disposal_ratio=pledge.disposal_ratio,
    )
