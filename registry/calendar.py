"""The exchange's calendar: its time zone, its day, its business days, and the days the registry speaks of.

Business days are Monday to Friday; the exchange's holiday calendar (春节, 国庆 …) is not modelled yet, so
a hold asked just before a public holiday lapses earlier in working days than it would by the exchange's
own calendar, and a VWAP window over a holiday reaches back fewer trading days.

The days of trade prints, price queries and reports: from 2000-01-01 (before any CCER or CDCER unit
existed; it also keeps `day - window` far from `date.min`) up to today in Beijing, by the injected clock.
A print dated tomorrow would value every pledge at a price nobody has traded yet; a book "as of" next
month would report facts that do not exist. Loan dates have their own bounds (registry/pledge/rules.py)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from registry.errors import InvalidInput

EXCHANGE_TZ = ZoneInfo("Asia/Shanghai")
EARLIEST = date(2000, 1, 1)


def exchange_day(at: datetime) -> date:
    """The day it is at the exchange (Beijing) at the instant `at`."""
    return at.astimezone(EXCHANGE_TZ).date()


def shift_business_days(day: date, n: int) -> date:
    """The day `n` business days after `day` (before it, for a negative `n`)."""
    step = timedelta(days=1 if n >= 0 else -1)
    left = abs(n)
    while left > 0:
        day += step
        if day.weekday() < 5:
            left -= 1
    return day


def add_business_days(start: datetime, days: int) -> datetime:
    """The same time of day (Beijing) `days` business days later, in `start`'s time zone."""
    local = start.astimezone(EXCHANGE_TZ)
    later = datetime.combine(shift_business_days(local.date(), days), local.timetz())
    return later.astimezone(start.tzinfo)


def business_days_before(day: date, n: int) -> date:
    """The day n business days before `day`: a window of n business days is (that day, day]."""
    return shift_business_days(day, -n)


def check_day(day: date, field: str, *, today: date) -> date:
    """`day` if the registry can speak of it; else InvalidInput naming `field`."""
    if day < EARLIEST:
        raise InvalidInput(field, f"a day from {EARLIEST} on")
    if day > today:
        raise InvalidInput(field, f"a day up to today ({today}, Beijing), not in the future")
    return day
