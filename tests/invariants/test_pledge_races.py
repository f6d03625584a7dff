"""Pledge races with real commits, through the running app."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import Engine, text

from registry.db import unit_of_work
from registry.ledger.consistency import find_problems
from registry.ledger.models import PartyKind
from registry.principal import Role
from tests import factories as f


def test_fifty_registrations_from_two_banks_never_hold_more_than_there_is(
    committed_engine: Engine, live_url: str
) -> None:
    with unit_of_work(committed_engine) as s:
        banks = [f.auth(f.key(s, f.party(s, PartyKind.BANK), Role.BANK)) for _ in range(2)]
        pledgor, borrower = f.party(s), f.party(s)
        account = f.account(s, pledgor).id
        f.issue(s, account, 10_000)
    rng = random.Random(11)
    asks = [(banks[n % 2], rng.randint(100, 600)) for n in range(50)]  # ~17,500 asked for 10,000

    def attempt(job: tuple[dict[str, str], int]) -> tuple[int, int, int]:
        headers, quantity = job
        response = httpx.post(
            f"{live_url}/v1/pledges",
            headers=headers,
            timeout=60,
            json=f.pledge_body(account, borrower.id, quantity),
        )
        held = response.json().get("held_quantity", 0) if response.status_code == 201 else 0
        return response.status_code, quantity, held

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attempt, asks))
    assert {status for status, _, _ in outcomes} <= {201, 409}
    for status, asked, held in outcomes:
        assert held == (asked if status == 201 else 0)  # all of it, or nothing
    granted = sum(held for _, _, held in outcomes)
    with committed_engine.connect() as conn:
        in_db = conn.execute(
            text("SELECT coalesce(sum(quantity), 0) FROM holding WHERE status = 'held'")
        ).scalar()
        pledges = conn.execute(text("SELECT count(*) FROM pledge")).scalar()
    assert in_db == granted <= 10_000
    assert granted > 10_000 - 600 and pledges == sum(1 for s, _, _ in outcomes if s == 201)
    with unit_of_work(committed_engine) as s:
        assert find_problems(s) == []


def test_confirm_and_cancel_of_one_instruction_exactly_one_wins(
    committed_engine: Engine, live_url: str
) -> None:
    with unit_of_work(committed_engine) as s:
        exchange = f.auth(f.key(s, f.party(s, PartyKind.EXCHANGE), Role.EXCHANGE, operator="op"))
        bank = f.auth(f.key(s, f.party(s, PartyKind.BANK), Role.BANK))
        pledgor, borrower = f.party(s), f.party(s)
        account = f.account(s, pledgor).id
        f.issue(s, account, 10_000)
    for _ in range(10):
        made = httpx.post(
            f"{live_url}/v1/pledges", headers=bank, json=f.pledge_body(account, borrower.id, 100), timeout=30
        ).json()
        instruction = made["instructions"][0]["id"]
        calls = [
            (f"{live_url}/v1/instructions/{instruction}/confirm", exchange),
            (f"{live_url}/v1/instructions/{instruction}/cancel", bank),
        ]
        with ThreadPoolExecutor(max_workers=2) as pool:
            codes = sorted(pool.map(lambda c: httpx.post(c[0], headers=c[1], timeout=30).status_code, calls))
        assert codes == [200, 409]
        final = httpx.get(f"{live_url}/v1/pledges/{made['id']}", headers=bank, timeout=30).json()
        assert final["status"] in ("active", "cancelled")
        assert final["quantity"] + final["held_quantity"] == (100 if final["status"] == "active" else 0)
    with unit_of_work(committed_engine) as s:
        assert find_problems(s) == []
