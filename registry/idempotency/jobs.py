"""Idempotency records' scheduled work: forgetting keys past their time to live."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from registry.config import Settings
from registry.idempotency.service import purge
from registry.principal import Actor
from registry.scheduling.job import Job


def purge_keys(settings: Settings) -> Job:
    def run(session: Session, actor: Actor) -> int:
        return purge(session, older_than=actor.at - timedelta(hours=settings.idempotency_ttl_hours))

    return run
