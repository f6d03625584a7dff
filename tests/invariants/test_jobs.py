"""Scheduled jobs run once across processes, and lapse unconfirmed requests on time."""

from __future__ import annotations

import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from sqlalchemy import Engine, text

from registry import scheduler
from registry.calendar import EXCHANGE_TZ
from registry.clock import FixedClock
from registry.db import unit_of_work
from registry.idempotency.jobs import purge_keys
from registry.ledger.consistency import find_problems
from registry.ledger.models import PartyKind
from registry.pledge.service import expire_lapsed
from registry.valuation.jobs import daily_revaluation
from tests import factories as f


def _pending_pledge(engine: Engine) -> None:
    from datetime import date
    from decimal import Decimal

    from registry.ledger.service import Selection
    from registry.pledge import service as pledges

    with unit_of_work(engine) as s:
        account = f.account(s)
        f.issue(s, account.id, 100)
        pledges.register(
            s, f.bank_actor(f.party(s, PartyKind.BANK)), pledgor_account_id=account.id,
            borrower_party_id=account.party_id,
            loan=pledges.Loan("JK-1", Decimal("1000.00"), date(2026, 3, 2), date(2027, 3, 1)),
            collateral=Selection(credit_type="CCER", quantity=60),
            terms=pledges.Terms(Decimal("0.7"), Decimal("1.3"), Decimal("1.1")),
        )  # fmt: skip


def test_a_job_runs_in_one_process_at_a_time(committed_engine: Engine) -> None:
    _pending_pledge(committed_engine)
    clock = FixedClock(f.AT + timedelta(days=30))
    run = scheduler.guarded(committed_engine, clock, "expire_holds", expire_lapsed)
    with committed_engine.connect() as other_process:
        other_process.execute(text("SELECT pg_advisory_lock(:k)"), {"k": zlib.crc32(b"expire_holds")})
        assert run() == -1  # another process holds the job: this one skips
        other_process.execute(text("SELECT pg_advisory_unlock_all()"))
        other_process.commit()
    assert run() == 1
    assert run() == 0  # nothing left: running again changes nothing
    with unit_of_work(committed_engine) as s:
        assert s.execute(text("SELECT status FROM pledge")).scalar_one() == "expired"
        assert find_problems(s) == []


def test_nothing_lapses_before_its_time(committed_engine: Engine) -> None:
    _pending_pledge(committed_engine)
    run = scheduler.guarded(
        committed_engine, FixedClock(f.AT + timedelta(days=6)), "expire_holds", expire_lapsed
    )
    assert run() == 0  # Monday + 6 calendar days is only 4 business days
    with unit_of_work(committed_engine) as s:
        assert s.execute(text("SELECT status FROM pledge")).scalar_one() == "pending"


def test_the_daily_revaluation_runs_once_per_fire_time_and_catches_up_once(committed_engine: Engine) -> None:
    from registry.config import Settings

    settings = Settings(database_url="postgresql://unused/unused", revalue_at="15:30")
    clock = FixedClock(
        datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
    )  # Tuesday 10:00 in Shanghai: Monday's run missed
    daily = scheduler.once_per_fire_time(
        committed_engine, clock, "revalue", "15:30", daily_revaluation(settings)
    )
    with ThreadPoolExecutor(max_workers=2) as pool:  # two processes wake up at once
        outcomes = sorted(pool.map(lambda _: daily(), range(2)))
    assert outcomes[0] == -1 and outcomes[1] >= 0
    assert daily() == -1  # Monday's run is done; nothing to catch up twice
    clock.advance(timedelta(hours=6))  # Tuesday 16:00: Tuesday's run is due
    assert daily() >= 0
    with committed_engine.connect() as conn:
        runs = (
            conn.execute(text("SELECT fire_time FROM job_run WHERE job = 'revalue' ORDER BY 1"))
            .scalars()
            .all()
        )
    assert [r.astimezone(EXCHANGE_TZ).strftime("%a %H:%M") for r in runs] == ["Mon 15:30", "Tue 15:30"]


def test_two_schedulers_on_one_database_run_the_catch_up_once(committed_engine: Engine) -> None:
    from registry.config import Settings

    _pending_pledge(committed_engine)
    settings = Settings(database_url="postgresql://unused/unused", revalue_at="15:30")
    clock = FixedClock(datetime(2026, 3, 3, 2, 0, tzinfo=UTC))
    instances = [scheduler.build(committed_engine, clock, settings) for _ in range(2)]
    for s in instances:
        s.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with committed_engine.connect() as conn:
                done = conn.execute(
                    text("SELECT count(*) FROM job_run WHERE finished_at IS NOT NULL")
                ).scalar_one()
            if done:
                break
            time.sleep(0.1)
        time.sleep(0.5)  # let the other instance try too
    finally:
        for s in instances:
            s.shutdown(wait=True)
    with committed_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM job_run")).scalar_one() == 1


def test_idempotency_keys_are_kept_for_their_ttl_then_purged(committed_engine: Engine) -> None:
    from registry.config import Settings
    from registry.idempotency.service import Claim, claim, fingerprint

    with unit_of_work(committed_engine) as s:
        party = f.party(s, PartyKind.BANK)
        assert claim(s, Claim(uuid4(), party.id, "k-1", fingerprint("POST", "/x", "{}"), f.AT)) is None
    settings = Settings(database_url="postgresql://unused/unused", idempotency_ttl_hours=24)
    job = purge_keys(settings)
    assert scheduler.guarded(committed_engine, FixedClock(f.AT + timedelta(hours=23)), "purge", job)() == 0
    assert scheduler.guarded(committed_engine, FixedClock(f.AT + timedelta(hours=25)), "purge", job)() == 1
