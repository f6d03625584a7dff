"""The exchange's pledge statistics for a period: the figures an exchange puts in its annual report.

Dates are Beijing days, both ends included. Registered = registrations confirmed in the period;
released / disposed = pledges that ended so in the period; financing secured = the principal of the
pledges registered; units frozen and the largest pledgors are as of the end of the period (replayed from
the trail, as in the collateral book); time to confirmation = from the bank's request to the exchange's
confirmation, for the registrations confirmed in the period."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from registry import authz
from registry.calendar import check_day
from registry.errors import InvalidInput
from registry.pledge.states import InstructionStatus, InstructionType, PledgeStatus
from registry.principal import Principal, Role
from registry.report.collateral_book import CENT, REPLAY, end_of_day, load_positions

MAX_DAYS = 3700  # ten years


@dataclass(frozen=True, slots=True)
class Month:
    month: str  # YYYY-MM
    registered: int
    financing: Decimal


@dataclass(frozen=True, slots=True)
class Pledgor:
    name: str
    pledges: int
    units: int


@dataclass(frozen=True, slots=True)
class ExchangeStats:
    period_from: date
    period_to: date
    registered: int
    released: int
    disposed: int
    financing_secured: Decimal
    units_frozen: dict[str, int]  # credit type -> units, at the end of the period
    largest_pledgors: list[Pledgor]
    confirmation_hours_avg: Decimal | None
    confirmation_hours_median: Decimal | None
    months: list[Month]


COUNTS = f"""
    SELECT count(*) FILTER (WHERE confirmed_at >= :start AND confirmed_at < :end) AS registered,
           coalesce(sum(principal) FILTER (WHERE confirmed_at >= :start AND confirmed_at < :end), 0) AS financing,
           count(*) FILTER (WHERE status = '{PledgeStatus.RELEASED}' AND closed_at >= :start AND closed_at < :end)
               AS released,
           count(*) FILTER (WHERE status = '{PledgeStatus.DISPOSED}' AND closed_at >= :start AND closed_at < :end)
               AS disposed
      FROM pledge
     WHERE (confirmed_at >= :start AND confirmed_at < :end) OR (closed_at >= :start AND closed_at < :end)
"""

CONFIRMATION = f"""
    SELECT avg(extract(epoch FROM decided_at - created_at)) / 3600 AS avg_hours,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM decided_at - created_at)) / 3600
               AS median_hours
      FROM instruction
     WHERE type = '{InstructionType.REGISTER}' AND status = '{InstructionStatus.CONFIRMED}'
       AND decided_at >= :start AND decided_at < :end
"""

MONTHS = """
    SELECT to_char(confirmed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') AS month, count(*) AS registered,
           sum(principal) AS financing
      FROM pledge WHERE confirmed_at >= :start AND confirmed_at < :end GROUP BY 1 ORDER BY 1
"""

# The book's replay without its valuations: these figures count units, not what they are worth.
HELD = f"""
    {REPLAY}
    SELECT h.pledge_id, l.pledgor_party_id, ct.code AS credit_type, h.units, h.first
      FROM live l JOIN held h ON h.pledge_id = l.id JOIN credit_type ct ON ct.id = l.credit_type_id
"""

FROZEN = """
    SELECT credit_type, sum(units) AS units FROM report_positions GROUP BY 1 ORDER BY 1
"""

PLEDGORS = """
    SELECT party.name, count(*) FILTER (WHERE first) AS pledges, sum(units) AS units
      FROM report_positions JOIN party ON party.id = report_positions.pledgor_party_id
     GROUP BY party.name ORDER BY units DESC, party.name LIMIT :top
"""


def _hours(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.1"))


def exchange_stats(
    session: Session, principal: Principal, *, period_from: date, period_to: date, today: date, top: int = 10
) -> ExchangeStats:
    """`today`: the Beijing day by the caller's clock (registry.calendar); a period may not end after it."""
    authz.require_role(principal, Role.EXCHANGE, Role.AUDITOR)
    check_day(period_from, "from", today=today)
    check_day(period_to, "to", today=today)
    if period_to < period_from:
        raise InvalidInput("to", "the period ends before it starts")
    if (period_to - period_from).days > MAX_DAYS:
        raise InvalidInput("to", "at most ten years at a time")
    start, end = (
        end_of_day(period_from - timedelta(days=1)),
        end_of_day(period_to),
    )  # [first instant, after last)
    params: dict[str, Any] = {"start": start, "end": end, "bank": None, "top": top}
    load_positions(session, params, HELD)
    counts = session.execute(text(COUNTS), params).one()
    timing = session.execute(text(CONFIRMATION), params).one()
    return ExchangeStats(
        period_from=period_from,
        period_to=period_to,
        registered=counts.registered,
        released=counts.released,
        disposed=counts.disposed,
        financing_secured=Decimal(counts.financing).quantize(CENT),
        units_frozen={r.credit_type: int(r.units) for r in session.execute(text(FROZEN), params)},
        largest_pledgors=[
            Pledgor(r.name, r.pledges, int(r.units)) for r in session.execute(text(PLEDGORS), params)
        ],
        confirmation_hours_avg=_hours(timing.avg_hours),
        confirmation_hours_median=_hours(timing.median_hours),
        months=_every_month(period_from, period_to, session.execute(text(MONTHS), params).all()),
    )


def _every_month(period_from: date, period_to: date, rows: Sequence[Any]) -> list[Month]:
    """Each month of the period, those without a registration at zero: a chart (and a reader) must see
    a quiet month as a gap in financing, not as a month that is not there."""
    found = {r.month: r for r in rows}
    months, year, month = [], period_from.year, period_from.month
    while (year, month) <= (period_to.year, period_to.month):
        key = f"{year:04d}-{month:02d}"
        row = found.get(key)
        financing = Decimal(row.financing if row is not None else 0).quantize(CENT)
        months.append(Month(key, row.registered if row is not None else 0, financing))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months
