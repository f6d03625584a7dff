"""The poison drill at small scale (the full one is bench/poison_drill.py): with a poisoned webhook URL,
an endpoint that drips its answer and an extreme pledge in place, prices post, every pledge is valued,
and every other bank's alerts are delivered at the next tick of the delivery job."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from registry import outbound
from registry.alert import delivery
from registry.clock import FixedClock
from registry.config import Settings
from registry.db import unit_of_work
from registry.ledger.models import PartyKind
from registry.principal import Role
from registry.valuation.jobs import daily_revaluation
from registry.valuation.models import ValuationMethod
from tests import factories as f
from tests.hostile.test_jobs import make_extreme
from tests.test_valuation import active_pledge, trades
from tests.webhooks import Receiver, outcome, poison

NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # Monday 15:00 in Shanghai
TICK_S = 5.0  # generous: a good bank's delivery takes milliseconds; this only bounds a slow CI machine
DRIP_DEADLINE_S = 8.0  # longer than the test's ticks, so the drip is still in flight at the second tick


def eventually(condition: Callable[[], bool], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def state(engine: Engine, delivery_id: int) -> tuple[str, int, str | None]:
    with unit_of_work(engine) as s:
        return outcome(s, delivery_id)


def deliveries_of(engine: Engine, party_id: object) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT id FROM webhook_delivery WHERE party_id = :p ORDER BY id"),
                                 {"p": party_id}).scalars())  # fmt: skip


def test_one_poisoned_bank_one_slow_bank_and_an_extreme_pledge_hold_nobody_up(
    committed_engine: Engine, app_engine: Engine
) -> None:
    good = [Receiver(), Receiver()]
    drip = Receiver(drip_s=0.5)  # its answer would take 19 s
    try:
        with unit_of_work(committed_engine) as s:
            trades(s, ("2026-02-27", "70.00", 1000))
            books = [active_pledge(s, method=ValuationMethod.LAST_CLOSE) for _ in range(4)]  # coverage 1.40
            extreme = active_pledge(s, units=20_000, method=ValuationMethod.LAST_CLOSE)
            make_extreme(s, extreme.pledge_id)
            s.execute(text("UPDATE pledge SET pledgee_party_id = :b WHERE id = :p"),
                      {"b": books[1].bank.id, "p": extreme.pledge_id})  # the second good bank's  # fmt: skip
            poison(s, books[0].bank.id, good[0].url)
            poison(s, books[1].bank.id, good[1].url)
            poison(s, books[2].bank.id, drip.url)
            poison(s, books[3].bank.id, "https://☃.invalid/alerts")  # written past an old version's check
            exchange = f.auth(f.key(s, f.party(s, PartyKind.EXCHANGE), Role.EXCHANGE))
        banks = [b.bank.id for b in books]
        clock = FixedClock(NOW)
        settings = Settings(database_url="postgresql://unused/unused", scheduler_enabled=False,
                            certificate_workers=0, key_cache_seconds=0)  # fmt: skip
        app = create_app(settings, engine=app_engine, clock=clock)
        dispatcher = delivery.Dispatcher(
            lambda: unit_of_work(app_engine), clock,
            delivery.Policy(outbound.Policy(allow_private=True, timeout_s=DRIP_DEADLINE_S), concurrency=4),
        )  # fmt: skip
        with TestClient(app) as http:
            # 1. A price under every normal pledge's warning line (1.20): prices post, all five are valued
            # (the extreme one at a coverage of 60,000,000), and each bank gets an alert to deliver.
            posted = http.post("/v1/prices/trades", headers=exchange, json=[
                {"credit_type": "CCER", "trade_date": "2026-03-02", "price": "60.00", "volume": 1000}])  # fmt: skip
            assert posted.status_code == 201 and posted.json()["revalued"] == 5, posted.text
            began = time.monotonic()
            assert dispatcher.tick() == 4  # one delivery of each bank
            assert eventually(lambda: all(len(r.received) == 1 for r in good), TICK_S)
            (poisoned,) = deliveries_of(committed_engine, banks[3])
            assert eventually(lambda: state(committed_engine, poisoned)[2] == "invalid_url", TICK_S)
            assert eventually(lambda: dispatcher.in_flight() == 1, TICK_S)  # the drip, still going

            # 2. Back above the line: the alerts clear, and those deliveries go out at the next tick too;
            # the dripping bank's next one waits for its first (one in flight per bank).
            posted = http.post("/v1/prices/trades", headers=exchange, json=[
                {"credit_type": "CCER", "trade_date": "2026-03-02", "price": "70.00", "volume": 1000}])  # fmt: skip
            assert posted.status_code == 201 and posted.json()["revalued"] == 5
            assert dispatcher.tick() == 3
            assert eventually(lambda: all(len(r.received) == 2 for r in good), TICK_S)
            assert time.monotonic() - began < DRIP_DEADLINE_S  # all of it while the drip was held

            # 3. The drip is cut at its deadline, and its bank sees only that it timed out; only then is
            # its next delivery sent (the endpoint now hangs up on it).
            first, second = deliveries_of(committed_engine, banks[2])
            assert eventually(lambda: state(committed_engine, first) == ("pending", 1, "timeout"),
                              DRIP_DEADLINE_S + TICK_S)  # fmt: skip
            drip.release.set()
            assert dispatcher.wait(timeout=DRIP_DEADLINE_S + TICK_S)
            assert state(committed_engine, second)[:2] == ("pending", 1)
            for bank in banks[:2]:
                assert [state(committed_engine, d) for d in deliveries_of(committed_engine, bank)] == [
                    ("delivered", 1, None)] * 2  # fmt: skip
        dispatcher.close()
        # 4. The daily job values every pledge, the extreme one included.
        with unit_of_work(committed_engine) as s:
            assert daily_revaluation(settings)(s, f.system(NOW)) == 5
            coverage = s.execute(text("SELECT coverage_ratio FROM valuation WHERE pledge_id = :p "
                                      "ORDER BY id DESC LIMIT 1"), {"p": extreme.pledge_id}).scalar_one()  # fmt: skip
            assert coverage == Decimal(20_000 * 70) / Decimal("0.01")
    finally:
        for receiver in (*good, drip):
            receiver.close()
