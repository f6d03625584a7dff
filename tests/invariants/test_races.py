"""Concurrent conflicting requests: the ledger never goes negative, never double-spends, never deadlocks."""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import Engine, text

from registry.audit.service import verify_chains
from registry.db import unit_of_work
from registry.errors import RegistryError
from registry.ledger import pledged
from registry.ledger import service as ledger
from registry.ledger.consistency import find_problems
from registry.ledger.errors import InsufficientUnits
from registry.ledger.models import PartyKind
from registry.ledger.service import Selection, SerialRange
from registry.principal import Role
from tests import factories as f


def _accounts(engine: Engine, n: int, units: int) -> tuple[list[uuid.UUID], int]:
    with unit_of_work(engine) as s:
        accounts = [f.account(s).id for _ in range(n)]
        start = f.issue(s, accounts[0], units).serial_start
    return accounts, start


def _available(engine: Engine, account_id: uuid.UUID) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT coalesce(sum(quantity), 0) FROM holding WHERE account_id = :a "
                    "AND status = 'available'"
                ),
                {"a": account_id},
            ).scalar_one()
        )


def _assert_whole(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        assert find_problems(s) == []
    assert verify_chains(engine).ok


def test_many_transfers_out_of_one_account_never_overdraw(committed_engine: Engine) -> None:
    accounts, _ = _accounts(committed_engine, 51, 1000)
    source = accounts[0]

    def attempt(i: int) -> str:
        try:
            with unit_of_work(committed_engine) as s:
                ledger.transfer(
                    s,
                    f.system(),
                    from_account_id=source,
                    to_account_id=accounts[i + 1],
                    selection=Selection(credit_type="CCER", quantity=30),
                )
            return "ok"
        except InsufficientUnits:
            return "insufficient"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attempt, range(50)))
    assert outcomes.count("ok") == 33 and outcomes.count("insufficient") == 17
    assert _available(committed_engine, source) == 10
    assert sum(_available(committed_engine, a) for a in accounts[1:]) == 990
    _assert_whole(committed_engine)


def test_criss_cross_transfers_do_not_deadlock_or_lose_units(committed_engine: Engine) -> None:
    accounts, start = _accounts(committed_engine, 4, 4000)
    with unit_of_work(committed_engine) as s:  # spread the units
        for target in accounts[1:]:
            ledger.transfer(
                s,
                f.system(),
                from_account_id=accounts[0],
                to_account_id=target,
                selection=Selection(credit_type="CCER", quantity=1000),
            )
    rng = random.Random(7)
    jobs = []
    for _ in range(300):
        a, b = rng.sample(accounts, 2)
        if rng.random() < 0.5:
            jobs.append((a, b, Selection(credit_type="CCER", quantity=rng.randint(1, 120))))
        else:
            lo = start + rng.randint(0, 3900)
            jobs.append((a, b, Selection(blocks=[SerialRange("CCER", lo, lo + rng.randint(0, 60))])))

    def run(job: tuple[uuid.UUID, uuid.UUID, Selection]) -> str:
        try:
            with unit_of_work(committed_engine) as s:
                ledger.transfer(s, f.system(), from_account_id=job[0], to_account_id=job[1], selection=job[2])
            return "ok"
        except RegistryError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(run, jobs))
    assert set(outcomes) <= {"ok", "insufficient_units"}, set(outcomes)
    assert outcomes.count("ok") > 50
    assert sum(_available(committed_engine, a) for a in accounts) == 4000
    _assert_whole(committed_engine)


def test_competing_holds_never_hold_more_than_there_is(committed_engine: Engine) -> None:
    accounts, _ = _accounts(committed_engine, 1, 1000)
    rng = random.Random(3)
    asks = [rng.randint(10, 90) for _ in range(50)]
    with unit_of_work(committed_engine) as s:
        pledge_ids = [f.bare_pledge(s, accounts[0]) for _ in asks]

    def attempt(job: tuple[int, uuid.UUID]) -> int:
        quantity, pledge_id = job
        try:
            with unit_of_work(committed_engine) as s:
                moved = pledged.hold(
                    s,
                    f.system(),
                    account_id=accounts[0],
                    pledge_id=pledge_id,
                    selection=Selection(credit_type="CCER", quantity=quantity),
                )
            assert moved.quantity == quantity  # all of it, or nothing
            return quantity
        except InsufficientUnits:
            return 0

    with ThreadPoolExecutor(max_workers=16) as pool:
        held = list(pool.map(attempt, zip(asks, pledge_ids, strict=True)))
    with committed_engine.connect() as conn:
        in_db = conn.execute(
            text("SELECT coalesce(sum(quantity), 0) FROM holding WHERE status = 'held'")
        ).scalar()
    assert in_db == sum(held) <= 1000
    assert sum(held) > 1000 - 90  # it stopped only because the next ask did not fit
    _assert_whole(committed_engine)


def test_concurrent_retries_with_one_idempotency_key_transfer_once(
    committed_engine: Engine, live_url: str
) -> None:
    with unit_of_work(committed_engine) as s:
        exchange = f.party(s, PartyKind.EXCHANGE)
        api_key = f.key(s, exchange, Role.EXCHANGE)
        a, b = f.account(s).id, f.account(s).id
        f.issue(s, a, 1000)
    body = {"from_account_id": str(a), "to_account_id": str(b), "credit_type": "CCER", "quantity": 100}
    headers = {**f.auth(api_key), "Idempotency-Key": "transfer-2026-0001"}

    def post(_: int) -> httpx.Response:
        return httpx.post(f"{live_url}/v1/transfers", json=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(post, range(10)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.text for r in responses}) == 1  # every retry saw the first response
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 9
    assert _available(committed_engine, b) == 100
    _assert_whole(committed_engine)


def test_a_refused_request_leaves_its_idempotency_key_free(committed_engine: Engine, live_url: str) -> None:
    """Production's one-transaction-per-request: the failed attempt is rolled back, key included."""
    with unit_of_work(committed_engine) as s:
        api_key = f.key(s, f.party(s, PartyKind.EXCHANGE), Role.EXCHANGE)
        a, b = f.account(s).id, f.account(s).id
        f.issue(s, a, 50)
    body = {"from_account_id": str(a), "to_account_id": str(b), "credit_type": "CCER", "quantity": 80}
    headers = {**f.auth(api_key), "Idempotency-Key": "wait-for-units"}
    first = httpx.post(f"{live_url}/v1/transfers", json=body, headers=headers, timeout=30)
    assert first.status_code == 409 and first.json()["code"] == "insufficient_units"
    with unit_of_work(committed_engine) as s:
        f.issue(s, a, 50)
    retry = httpx.post(f"{live_url}/v1/transfers", json=body, headers=headers, timeout=30)
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers
    assert _available(committed_engine, b) == 80


def test_batches_and_single_transfers_on_the_same_accounts_never_lose_or_duplicate_units(
    committed_engine: Engine,
) -> None:
    """Settlement batches (one lock pass over all their accounts, blocks and events copied in) racing single
    transfers and each other over the same accounts: every batch applies whole or not at all, nothing waits
    forever, and the ledger and its trail stay whole."""
    from registry.ledger import settlement

    accounts, start = _accounts(committed_engine, 6, 6000)
    with unit_of_work(committed_engine) as s:  # spread the units
        for target in accounts[1:]:
            ledger.transfer(s, f.system(), from_account_id=accounts[0], to_account_id=target,
                            selection=Selection(credit_type="CCER", quantity=1000))  # fmt: skip
    rng = random.Random(11)
    jobs: list[list[tuple[uuid.UUID, uuid.UUID, Selection]]] = []
    for n in range(120):
        size = 40 if n % 4 == 0 else 1  # a batch, then three single transfers
        job = []
        for _ in range(size):
            a, b = rng.sample(accounts, 2)
            if size > 1 or rng.random() < 0.7:  # a batch's lines by quantity, so that most batches apply
                job.append((a, b, Selection(credit_type="CCER", quantity=rng.randint(1, 30))))
            else:
                lo = start + rng.randint(0, 5900)
                job.append((a, b, Selection(blocks=[SerialRange("CCER", lo, lo + rng.randint(0, 40))])))
        jobs.append(job)

    def events() -> int:
        with committed_engine.connect() as conn:
            return int(
                conn.execute(text("SELECT count(*) FROM audit_event WHERE kind = 'transfer'")).scalar_one()
            )

    def run(job: list[tuple[uuid.UUID, uuid.UUID, Selection]]) -> str:
        try:
            with unit_of_work(committed_engine) as s:
                if len(job) == 1:
                    ((a, b, selection),) = job
                    ledger.transfer(s, f.system(), from_account_id=a, to_account_id=b, selection=selection)
                    return "ok"
                moved = settlement.settle(s, f.system(), [settlement.Line(a, b, sel) for a, b, sel in job])
                assert len(moved) == len(job)
            return "batch"
        except RegistryError as exc:
            return exc.code

    before = events()
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(run, jobs))
    assert set(outcomes) <= {"ok", "batch", "insufficient_units", "batch_refused"}, set(outcomes)
    assert outcomes.count("batch") >= 5 and outcomes.count("ok") >= 30, outcomes
    assert sum(_available(committed_engine, a) for a in accounts) == 6000
    assert events() > before
    _assert_whole(committed_engine)
