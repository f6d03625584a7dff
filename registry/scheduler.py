"""Scheduled jobs, run inside the app's processes by APScheduler.

Every app process runs a scheduler; each job run takes a PostgreSQL advisory lock for its transaction
(`pg_try_advisory_xact_lock`), so with several processes or instances a run happens once: the others
find the lock taken and skip. The jobs themselves are idempotent (they lock the rows they change and
re-check their state), so an overlap could only waste work, never apply a change twice."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, text
from sqlmodel import Session

from registry.clock import Clock
from registry.config import Settings
from registry.db import unit_of_work
from registry.principal import SYSTEM, Actor

log = logging.getLogger(__name__)


def guarded(
    engine: Engine, clock: Clock, name: str, job: Callable[[Session, Actor], int]
) -> Callable[[], int]:
    """The job in one transaction, only if no other process is running the same job right now."""
    key = zlib.crc32(name.encode())

    def run() -> int:
        with unit_of_work(engine) as session:
            if not session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar_one():
                return -1
            done = job(session, Actor(SYSTEM, clock.now(), request_id=f"job:{name}"))
        if done:
            log.info("job %s: %s item(s)", name, done)
        return done

    return run


def build(engine: Engine, clock: Clock, settings: Settings) -> BackgroundScheduler:
    from registry.pledge.service import expire_lapsed

    scheduler = BackgroundScheduler(
        timezone="Asia/Shanghai", job_defaults={"coalesce": True, "max_instances": 1}
    )
    jobs: list[tuple[str, Callable[[Session, Actor], int], dict[str, Any]]] = [
        ("expire_holds", expire_lapsed, {"minutes": settings.expire_holds_every_minutes}),
    ]
    for name, job, every in jobs:
        scheduler.add_job(guarded(engine, clock, name, job), "interval", id=name, name=name, **every)
    return scheduler
