"""The valuation's scheduled work: the daily revaluation after the close."""

from __future__ import annotations

from sqlmodel import Session

from registry.config import Settings
from registry.principal import Actor
from registry.scheduling.job import Job


def daily_revaluation(settings: Settings) -> Job:
    """Every active pledge valued at the configured VWAP window, then the maturity alerts refreshed (a
    pledge's days to maturity change every day, prices or not)."""
    from registry.alert.service import refresh_maturity
    from registry.valuation.service import revalue

    def run(session: Session, actor: Actor) -> int:
        valued = revalue(session, now=actor.at, window_days=settings.vwap_days)
        refresh_maturity(session, now=actor.at, days_before=settings.maturity_days())
        return valued.valued

    return run
