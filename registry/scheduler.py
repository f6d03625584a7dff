"""Scheduled jobs, run inside the app's processes by APScheduler.

Every app process runs a scheduler. Two guards make a run happen once across processes and instances:
- interval jobs (lapse holds, purge old idempotency keys) take a PostgreSQL advisory lock for their
  transaction (`pg_try_advisory_xact_lock`); a process that finds it taken skips that tick;
- webhook deliveries are claimed under the same kind of lock, and leased one per bank while they are
  sent (registry/alert/delivery.py);
- the daily revaluation records its scheduled fire time in `job_run` (primary key (job, fire_time),
  inserted with ON CONFLICT DO NOTHING): only the process whose insert wins runs it. At start-up each
  process also asks for the latest fire time that has passed, so a run missed while the registry was
  down is caught up once (several missed days collapse into one run, valued at today's prices).
The jobs are idempotent besides: they lock what they change and re-check its state. Each domain keeps its
jobs in its own `jobs.py` (valuation, alert, certificate, idempotency, ratelimit); this module keeps only the
guards and the list of what runs when."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, text

from registry import metrics
from registry.calendar import EXCHANGE_TZ
from registry.clock import Clock
from registry.config import Settings
from registry.db import unit_of_work
from registry.principal import SYSTEM, Actor
from registry.scheduling.job import Job

log = logging.getLogger(__name__)

__all__ = ["Job", "build", "guarded", "last_fire_time", "once_per_fire_time"]


def guarded(engine: Engine, clock: Clock, name: str, job: Job) -> Callable[[], int]:
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


def last_fire_time(now: datetime, at: str) -> datetime:
    """The latest daily fire time at `at` (HH:MM, Asia/Shanghai) that is not after `now`."""
    hour, minute = (int(x) for x in at.split(":"))
    local = now.astimezone(EXCHANGE_TZ)
    fire = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if fire > local:
        fire -= timedelta(days=1)
    return fire


def once_per_fire_time(engine: Engine, clock: Clock, name: str, at: str, job: Job) -> Callable[[], int]:
    """Run the job for its latest due fire time, unless some process already has."""

    def run() -> int:
        now = clock.now()
        fire = last_fire_time(now, at)
        with unit_of_work(engine) as session:
            claimed = session.execute(
                text("INSERT INTO job_run (job, fire_time, started_at) VALUES (:j, :f, :now) "
                     "ON CONFLICT DO NOTHING RETURNING 1"),
                {"j": name, "f": fire, "now": now},
            ).first()  # fmt: skip
            if claimed is None:
                return -1
            done = job(session, Actor(SYSTEM, now, request_id=f"job:{name}"))
            session.execute(
                text("UPDATE job_run SET finished_at = :t, items = :n WHERE job = :j AND fire_time = :f"),
                {"t": clock.now(), "n": done, "j": name, "f": fire},
            )
        log.info("job %s for %s: %s item(s)", name, fire.isoformat(), done)
        return done

    return run


def build(
    engine: Engine, clock: Clock, settings: Settings, render: Callable[[dict[str, Any]], bytes] | None = None
) -> BackgroundScheduler:
    from registry.alert.jobs import delivery_dispatcher
    from registry.certificate.jobs import sweep_job
    from registry.idempotency.jobs import purge_keys
    from registry.pledge.service import expire_lapsed
    from registry.ratelimit.jobs import purge_counters
    from registry.valuation.jobs import daily_revaluation

    scheduler = BackgroundScheduler(
        timezone="Asia/Shanghai", job_defaults={"coalesce": True, "max_instances": 1}
    )
    every: list[tuple[str, Job, dict[str, Any]]] = [
        ("expire_holds", expire_lapsed, {"minutes": settings.expire_holds_every_minutes}),
        ("purge_idempotency_keys", purge_keys(settings), {"hours": 1}),
        ("purge_rate_limits", purge_counters, {"hours": 1}),
    ]
    # Each job is counted under its name (registry/metrics.py: runs, outcome, duration, items).
    for name, job, interval in every:
        run = metrics.job(name, guarded(engine, clock, name, job))
        scheduler.add_job(run, "interval", id=name, name=name, **interval)
    deliveries = delivery_dispatcher(engine, clock, settings)
    scheduler.add_job(metrics.job("deliver_webhooks", deliveries.tick), "interval", id="deliver_webhooks",
                      name="deliver_webhooks", seconds=settings.deliver_webhooks_every_seconds)  # fmt: skip
    scheduler.add_listener(lambda _: deliveries.close(wait=False), EVENT_SCHEDULER_SHUTDOWN)
    if render is not None:
        # Certificates are rendered right after their confirmation; this catches any a crash left behind.
        sweep = metrics.job(
            "render_certificates", sweep_job(engine, render, clock.now, grace=timedelta(minutes=2))
        )
        scheduler.add_job(sweep, "interval", id="render_certificates", name="render certificates", minutes=1)
    daily = metrics.job("revalue", once_per_fire_time(engine, clock, "revalue", settings.revalue_at,
                                                      daily_revaluation(settings)))  # fmt: skip
    hour, minute = settings.revalue_at.split(":")
    scheduler.add_job(daily, "cron", id="revalue", name="revalue", hour=int(hour), minute=int(minute),
                      misfire_grace_time=3600)  # fmt: skip
    scheduler.add_job(daily, "date", id="revalue_catch_up", name="revalue catch-up")  # at start-up
    return scheduler
