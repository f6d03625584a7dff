"""Pledge races with real commits, through the running app."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import httpx
from sqlalchemy import Engine, text

from registry.db import unit_of_work
from registry.ledger.consistency import find_problems
from registry.ledger.models import PartyKind
from registry.principal import Role
from tests import factories as f


def test_fifty_consents_to_two_banks_never_hold_more_than_there_is(
    committed_engine: Engine, live_url: str
) -> None:
    """Fifty requests from two banks hold nothing; the pledgor's fifty concurrent consents hold each
    request's units whole or not at all, never more than the account has."""
    with unit_of_work(committed_engine) as s:
        banks = [f.auth(f.key(s, f.party(s, PartyKind.BANK), Role.BANK)) for _ in range(2)]
        pledgor, borrower = f.party(s), f.party(s)
        pledgor_key = f.auth(f.key(s, pledgor, Role.HOLDER, operator="finance"))
        account = f.account(s, pledgor).id
        f.issue(s, account, 10_000)
    rng = random.Random(11)
    asks = [(banks[n % 2], rng.randint(100, 600)) for n in range(50)]  # ~17,500 asked for 10,000

    def ask(job: tuple[dict[str, str], int]) -> tuple[str, int]:
        headers, quantity = job
        response = httpx.post(
            f"{live_url}/v1/pledges",
            headers=headers,
            timeout=60,
            json=f.pledge_body(account, borrower.id, quantity),
        )
        assert response.status_code == 201 and response.json()["held_quantity"] == 0, response.text
        return response.json()["instructions"][0]["id"], quantity

    def consent(job: tuple[str, int]) -> tuple[int, int, int]:
        instruction, quantity = job
        response = httpx.post(
            f"{live_url}/v1/instructions/{instruction}/consent", headers=pledgor_key, timeout=60
        )
        return response.status_code, quantity, quantity if response.status_code == 200 else 0

    with ThreadPoolExecutor(max_workers=16) as pool:
        requests = list(pool.map(ask, asks))
        with committed_engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM holding WHERE status = 'held'")).scalar() == 0
        outcomes = list(pool.map(consent, requests))
    assert {status for status, _, _ in outcomes} <= {200, 409}
    granted = sum(q for status, q, _ in outcomes if status == 200)
    with committed_engine.connect() as conn:
        in_db = conn.execute(
            text("SELECT coalesce(sum(quantity), 0) FROM holding WHERE status = 'held'")
        ).scalar()
        queued = conn.execute(text("SELECT count(*) FROM instruction WHERE status = 'pending'")).scalar()
    assert in_db == granted <= 10_000
    assert granted > 10_000 - 600 and queued == sum(1 for s, _, _ in outcomes if s == 200)
    with unit_of_work(committed_engine) as s:
        assert find_problems(s) == []


def test_confirm_and_cancel_of_one_instruction_exactly_one_wins(
    committed_engine: Engine, live_url: str
) -> None:
    with unit_of_work(committed_engine) as s:
        exchange = f.auth(f.key(s, f.party(s, PartyKind.EXCHANGE), Role.EXCHANGE, operator="op"))
        bank = f.auth(f.key(s, f.party(s, PartyKind.BANK), Role.BANK))
        pledgor, borrower = f.party(s), f.party(s)
        pledgor_key = f.auth(f.key(s, pledgor, Role.HOLDER))
        account = f.account(s, pledgor).id
        f.issue(s, account, 10_000)
    for _ in range(10):
        made = httpx.post(
            f"{live_url}/v1/pledges", headers=bank, json=f.pledge_body(account, borrower.id, 100), timeout=30
        ).json()
        instruction = made["instructions"][0]["id"]
        agreed = httpx.post(
            f"{live_url}/v1/instructions/{instruction}/consent", headers=pledgor_key, timeout=30
        )
        assert agreed.status_code == 200, agreed.text
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


def _joint_world(
    committed_engine: Engine,
) -> tuple[dict[str, str], dict[str, str], list[dict[str, str]], str, str]:
    """An exchange operator's key, a bank's, two keys of one pledgor (two of its staff), its account, a borrower."""
    with unit_of_work(committed_engine) as s:
        exchange = f.auth(f.key(s, f.the_exchange(s), Role.EXCHANGE, operator="op"))
        bank = f.auth(f.key(s, f.party(s, PartyKind.BANK), Role.BANK))
        pledgor, borrower = f.party(s), f.party(s)
        pledgor_keys = [f.auth(f.key(s, pledgor, Role.HOLDER, operator=who)) for who in ("finance", "ceo")]
        account = f.account(s, pledgor).id
        f.issue(s, account, 10_000)
    return exchange, bank, pledgor_keys, str(account), str(borrower.id)


def _held_for(committed_engine: Engine, pledge_id: str) -> tuple[int, int]:
    with committed_engine.connect() as conn:
        row = conn.execute(
            text("""SELECT coalesce(sum(quantity) FILTER (WHERE status = 'held'), 0),
                           coalesce(sum(quantity) FILTER (WHERE status = 'frozen'), 0)
                      FROM holding WHERE pledge_id = :p"""),
            {"p": pledge_id},
        ).one()
    return int(row[0]), int(row[1])


def _post(url: str, key: dict[str, str], body: Any = None) -> int:
    return httpx.post(url, headers=key, json=body, timeout=30).status_code


def _ask(live_url: str, bank: dict[str, str], account: str, borrower: str, quantity: int) -> tuple[str, str]:
    made = httpx.post(
        f"{live_url}/v1/pledges", headers=bank, json=f.pledge_body(account, borrower, quantity), timeout=30
    ).json()
    return made["id"], f"{live_url}/v1/instructions/{made['instructions'][0]['id']}"


def test_consent_cancel_and_lapse_of_one_request_exactly_one_ends_it(
    committed_engine: Engine, live_url: str
) -> None:
    """The pledgor consents, the bank withdraws and the lapse job runs, all at once: exactly one of the two
    ends closes the request, and whatever the consent held is released with it."""
    from datetime import timedelta

    from registry.clock import FixedClock
    from registry.pledge.service import expire_lapsed
    from registry.principal import SYSTEM, Actor

    _, bank, (pledgor_key, _), account, borrower = _joint_world(committed_engine)
    later = FixedClock().now() + timedelta(days=3650)  # the lapse job, run as if long after

    def lapse() -> int:
        with unit_of_work(committed_engine) as s:
            return 200 if expire_lapsed(s, Actor(SYSTEM, later)) else 409

    for n in range(8):
        pledge_id, url = _ask(live_url, bank, account, borrower, 100)
        calls = [partial(_post, f"{url}/consent", pledgor_key), partial(_post, f"{url}/cancel", bank), lapse]
        random.Random(n).shuffle(calls)
        with ThreadPoolExecutor(max_workers=3) as pool:
            codes = dict(zip(calls, pool.map(lambda call: call(), calls), strict=True))
        ends = [
            code
            for call, code in codes.items()
            if call is lapse or "cancel" in getattr(call, "args", ("",))[0]
        ]
        assert sorted(ends) == [200, 409], codes
        final = httpx.get(url, headers=bank, timeout=30).json()["status"]
        assert final in ("cancelled", "expired") and _held_for(committed_engine, pledge_id) == (0, 0)
    with unit_of_work(committed_engine) as s:
        assert find_problems(s) == []


def test_two_consents_at_once_hold_the_units_once(committed_engine: Engine, live_url: str) -> None:
    _, bank, pledgor_keys, account, borrower = _joint_world(committed_engine)
    for _ in range(8):
        pledge_id, url = _ask(live_url, bank, account, borrower, 700)
        with ThreadPoolExecutor(max_workers=2) as pool:
            codes = sorted(pool.map(partial(_post, f"{url}/consent"), pledgor_keys))
        assert codes == [200, 409]
        assert _held_for(committed_engine, pledge_id) == (700, 0)
    with unit_of_work(committed_engine) as s:
        assert find_problems(s) == []


def test_a_decline_and_a_consent_then_confirmation_never_both_apply(
    committed_engine: Engine, live_url: str
) -> None:
    exchange, bank, (pledgor_key, _), account, borrower = _joint_world(committed_engine)

    def agree_and_confirm(url: str) -> str:
        if _post(f"{url}/consent", pledgor_key) != 200:
            return "refused"
        return "confirmed" if _post(f"{url}/confirm", exchange) == 200 else "refused"

    def decline(url: str) -> str:
        return "declined" if _post(f"{url}/decline", pledgor_key, {"reason": "no"}) == 200 else "refused"

    for _ in range(8):
        pledge_id, url = _ask(live_url, bank, account, borrower, 100)
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = sorted(pool.map(lambda call, url=url: call(url), [agree_and_confirm, decline]))
        final = httpx.get(f"{live_url}/v1/pledges/{pledge_id}", headers=bank, timeout=30).json()
        if results == ["confirmed", "refused"]:
            assert final["status"] == "active" and final["quantity"] == 100
        else:
            assert results == ["declined", "refused"]
            assert final["status"] == "declined" and final["quantity"] + final["held_quantity"] == 0
    with unit_of_work(committed_engine) as s:
        assert find_problems(s) == []


def test_asks_on_one_pledge_at_once_make_one_instruction(committed_engine: Engine, live_url: str) -> None:
    """Six releases asked of one active pledge at once: one is made, every other is a 409 problem (whether
    it saw the first one waiting or only met the one-open-instruction index), never a second instruction."""
    exchange, bank, (pledgor_key, _), account, borrower = _joint_world(committed_engine)
    for _ in range(4):
        pledge_id, url = _ask(live_url, bank, account, borrower, 300)
        assert _post(f"{url}/consent", pledgor_key) == 200 and _post(f"{url}/confirm", exchange) == 200
        asks = f"{live_url}/v1/pledges/{pledge_id}/instructions"
        with ThreadPoolExecutor(max_workers=6) as pool:
            codes = sorted(pool.map(partial(_post, key=bank, body={"type": "release"}), [asks] * 6))
        assert codes == [201] + [409] * 5, codes
        with committed_engine.connect() as conn:
            waiting = conn.execute(
                text("SELECT count(*) FROM instruction WHERE pledge_id = :p AND type = 'release'"),
                {"p": pledge_id},
            ).scalar()
        assert waiting == 1
    with unit_of_work(committed_engine) as s:
        assert find_problems(s) == []


def test_an_ask_that_waited_on_the_close_of_the_waiting_one_is_made(
    committed_engine: Engine, live_url: str
) -> None:
    """A bank's release waits for the pledge's lock while the release before it is being cancelled: once
    that commits, nothing is waiting any more, so the new one is made (not refused as if the old one were
    still open, which the ask's locking read, taken before its wait, still shows)."""
    import time
    from uuid import UUID

    from registry.ledger.models import Party
    from registry.pledge import service as pledges

    exchange, bank, (pledgor_key, _), account, borrower = _joint_world(committed_engine)
    pledge_id, url = _ask(live_url, bank, account, borrower, 300)
    assert _post(f"{url}/consent", pledgor_key) == 200 and _post(f"{url}/confirm", exchange) == 200
    asks = f"{live_url}/v1/pledges/{pledge_id}/instructions"
    first = httpx.post(asks, headers=bank, json={"type": "release"}, timeout=30).json()
    with ThreadPoolExecutor(max_workers=1) as pool, committed_engine.connect() as watcher:
        with unit_of_work(committed_engine) as s:
            lender = s.get(Party, s.execute(text("SELECT pledgee_party_id FROM pledge WHERE id = :p"),
                                            {"p": pledge_id}).scalar_one())  # fmt: skip
            assert lender is not None
            pledges.cancel(s, f.bank_actor(lender), UUID(first["id"]))  # holds the pledge's lock until commit
            second = pool.submit(_post, asks, bank, {"type": "release"})
            for _ in range(200):  # until the second ask waits for that lock
                waiting = watcher.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()")).scalar()  # fmt: skip
                watcher.rollback()
                if waiting:
                    break
                time.sleep(0.05)
            assert waiting, "the second ask never waited for the pledge's lock"
        assert second.result(timeout=30) == 201
    statuses = httpx.get(f"{live_url}/v1/pledges/{pledge_id}", headers=bank, timeout=30).json()[
        "instructions"
    ]
    assert sorted(i["status"] for i in statuses if i["type"] == "release") == ["cancelled", "pending"]
    with unit_of_work(committed_engine) as s:
        assert find_problems(s) == []
