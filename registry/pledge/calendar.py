"""Business days in the exchange's time zone, for the lapse of unconfirmed requests.

Weekends only; the exchange's holiday calendar (春节, 国庆 …) is not modelled yet, so a hold asked just
before a public holiday lapses earlier in working days than it would by the exchange's own calendar."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

EXCHANGE_TZ = ZoneInfo("Asia/Shanghai")


def add_business_days(start: datetime, days: int) -> datetime:
    local = start.astimezone(EXCHANGE_TZ)
    added = 0
    while added < days:
        local += timedelta(days=1)
        if local.weekday() < 5:
            added += 1
    return local.astimezone(start.tzinfo)
