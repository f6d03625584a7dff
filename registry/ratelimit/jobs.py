"""The throttles' scheduled work: counters of clients idle for a day are dropped."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from registry.principal import Actor
from registry.ratelimit.service import purge

IDLE = timedelta(days=1)


def purge_counters(session: Session, actor: Actor) -> int:
    return purge(session, older_than=actor.at - IDLE)
