"""Every setting that changes behaviour changes it: set to a value other than its default, the behaviour a
user would notice follows. Most settings are tested beside the feature they tune (the VWAP window with the
confirmation, the webhook deadline with the deliveries, the body limits with the limits);
`test_every_setting_is_exercised` keeps the list whole."""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from registry import scheduler
from registry.clock import FixedClock
from registry.config import Settings
from registry.valuation.jobs import daily_revaluation
from registry.workers import WorkerPool
from tests import factories as f

TESTS = Path(__file__).parent


def _settings(**changed: object) -> Settings:
    return Settings(database_url="postgresql://unused/unused", scheduler_enabled=False, **changed)  # type: ignore[arg-type]


def test_every_setting_is_exercised() -> None:
    """A setting no test names is a setting nobody knows works: each field of Settings (or its
    REGISTRY_ variable) appears in some test besides this one."""
    sources = "\n".join(p.read_text(encoding="utf-8") for p in TESTS.rglob("*.py"))
    named = {
        name for name in Settings.model_fields if re.search(rf"\b({name}|REGISTRY_{name.upper()})\b", sources)
    }
    assert set(Settings.model_fields) - named == set()


def test_the_scheduler_runs_its_jobs_as_often_as_set(committed_engine: Engine) -> None:
    settings = _settings(expire_holds_every_minutes=17, deliver_webhooks_every_seconds=7, revalue_at="16:05")
    jobs = scheduler.build(committed_engine, FixedClock(), settings)
    try:
        every = {job.id: job.trigger for job in jobs.get_jobs()}
        assert every["expire_holds"].interval == timedelta(minutes=17)
        assert every["deliver_webhooks"].interval == timedelta(seconds=7)
        assert str(every["revalue"]).startswith("cron[hour='16', minute='5'")
    finally:
        jobs.shutdown(wait=False) if jobs.running else None


def test_maturity_alert_days_choose_when_banks_are_told(session: Session) -> None:
    from tests.test_valuation import active_pledge, open_alerts

    book = active_pledge(session, maturity=date(2026, 6, 30))
    at_45_days = datetime.fromisoformat("2026-05-16T10:00:00+08:00")
    daily_revaluation(_settings())(session, f.system(at_45_days))  # the default: 30, 7 and 1 days before
    assert open_alerts(session, book.pledge_id, "ma%") == []
    daily_revaluation(_settings(maturity_alert_days="60,45"))(session, f.system(at_45_days))
    assert open_alerts(session, book.pledge_id, "ma%") == [("maturity_upcoming", "45")]


def _pid(_n: int) -> int:
    return os.getpid()


def test_a_worker_process_is_replaced_after_its_recycle_count() -> None:
    """REGISTRY_CERTIFICATE_RECYCLE_AFTER: a rendering process is replaced after that many documents, so
    that whatever memory a font cache or a leak takes is given back."""
    pool = WorkerPool(workers=1, recycle_after=2, what="test")
    try:
        pids = [pool.run(_pid, n) for n in range(6)]
    finally:
        pool.close()
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5]
    assert len(set(pids)) == 3 and os.getpid() not in pids


def test_the_pool_size_is_the_apps_connections() -> None:
    """REGISTRY_DB_POOL_SIZE: each app process keeps that many connections, and as many again at peaks."""
    from api.app import create_app

    app = create_app(_settings(db_pool_size=3, certificate_workers=0, report_workers=0))
    pool = app.state.engine.pool
    assert pool.size() == 3 and pool._max_overflow == 3
    app.state.engine.dispose()
