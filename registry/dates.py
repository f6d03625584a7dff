"""The days the registry speaks of: trade prints, price queries and report dates.

One rule for all of them: a day from 2000-01-01 (before any CCER or CDCER unit existed; it also keeps
`day - window` far from `date.min`) up to today in Beijing, by the injected clock. A print dated
tomorrow would value every pledge at a price nobody has traded yet; a book "as of" next month would
report facts that do not exist. Loan dates have their own bounds (api/schemas/pledges.py)."""

from __future__ import annotations

from datetime import date

from registry.errors import InvalidInput
from registry.valuation.service import exchange_day

__all__ = ["EARLIEST", "check_day", "exchange_day"]

EARLIEST = date(2000, 1, 1)


def check_day(day: date, field: str, *, today: date) -> date:
    """`day` if the registry can speak of it; else InvalidInput naming `field`."""
    if day < EARLIEST:
        raise InvalidInput(field, f"a day from {EARLIEST} on")
    if day > today:
        raise InvalidInput(field, f"a day up to today ({today}, Beijing), not in the future")
    return day
