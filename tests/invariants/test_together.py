"""Transfers written together (api/together.py) through the real app on the committed database: a batch forms
behind a transfer that waits on a lock, and each request in it gets what it would have had alone — its
answer, its refusal, its own audit events and its own idempotency record."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
from sqlalchemy import Engine, text

from api import together
from api.routers import ledger as ledger_routes
from registry import metrics
from registry.db import unit_of_work
from registry.ledger.models import PartyKind
from registry.principal import Role
from registry.together import Combiner
from tests import factories as f
from tests.conftest import Live
from tests.invariants.test_races import _assert_whole, _available


def _histogram(name: str) -> tuple[float, float]:
    """(count, sum) of a histogram of this process's metrics."""
    found = {s.name: s.value for m in metrics.TOGETHER.collect() for s in m.samples}
    return found[f"{name}_count"], found[f"{name}_sum"]


def _until(condition: Callable[[], bool], what: str, *, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _one_lane(live: Live) -> Combiner[together.Transfer, bytes]:
    """The app's combiner with one lane and a long patience: the queue waits for the lane the test holds."""
    app = live.app
    combiner = together.combiner(
        app.state.settings.model_copy(update={"transfers_together": 32, "transfers_together_lanes": 1}),
        app.state.unit_of_work,
        ledger_routes.transfer_json,
        patience=30,
    )
    assert combiner is not None
    app.state.transfers_together = combiner
    return combiner


def _body(a: uuid.UUID, b: uuid.UUID, quantity: int) -> dict[str, object]:
    return {"from_account_id": str(a), "to_account_id": str(b), "credit_type": "CCER", "quantity": quantity}


def _lock_waits(watch: psycopg.Connection[Any], n: int) -> Callable[[], bool]:
    def waiting() -> bool:  # its own connection: a transaction sees one snapshot of the activity
        row = watch.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()
        return row is not None and row[0] >= n

    return waiting


def test_transfers_waiting_for_a_turn_are_written_together_each_as_it_would_be_alone(
    committed_engine: Engine, live: Live
) -> None:
    combiner = _one_lane(live)
    with unit_of_work(committed_engine) as s:
        exchange = f.party(s, PartyKind.EXCHANGE)
        keys = [f.key(s, exchange, Role.EXCHANGE, operator=f"op-{n}") for n in (1, 2)]
        bank_key = f.key(s, f.party(s, PartyKind.BANK), Role.BANK)
        blocked, beyond = f.account(s).id, f.account(s).id
        f.issue(s, blocked, 10)
        sources = [f.account(s).id for _ in range(6)]
        targets = [f.account(s).id for _ in range(6)]
        for source in sources:
            f.issue(s, source, 1000)
    asks = [100, 200, 5000, 300, 400, 500]  # the third asks for more than its source holds
    before = _histogram("registry_transfers_together")
    alone_before = metrics.TOGETHER_ALONE._value.get()

    def post(n: int | None) -> httpx.Response:
        if n is None:
            body = {
                "from_account_id": str(blocked),
                "to_account_id": str(beyond),
                "credit_type": "CCER",
                "quantity": 10,
            }
            headers = f.auth(keys[0])
        else:
            body = {"from_account_id": str(sources[n]), "to_account_id": str(targets[n]), "credit_type": "CCER",
                    "quantity": asks[n]}  # fmt: skip
            headers = {**f.auth(keys[n % 2]), "X-Request-ID": f"together-{n}"}
            if n != 5:  # one without a key
                headers["Idempotency-Key"] = f"batch-{n}"
        return httpx.post(f"{live.url}/v1/transfers", json=body, headers=headers, timeout=60)

    url = committed_engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with (
        psycopg.connect(url) as lock,
        psycopg.connect(url, autocommit=True) as watch,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        lock.execute("SELECT 1 FROM account WHERE id = %s FOR UPDATE", [blocked])
        first: Future[httpx.Response] = pool.submit(post, None)  # alone, with the lane: it waits on the lock

        _until(_lock_waits(watch, 1), "the first transfer to wait on the account's lock")
        answers = [pool.submit(post, n) for n in range(6)]
        _until(lambda: combiner.waiting == 6, "the six transfers to queue behind it")
        # A bank may not transfer: refused at once, alone, while the lane is still held (never in the batch,
        # which it would fail for everyone)
        banks = httpx.post(f"{live.url}/v1/transfers", json=_body(sources[0], targets[0], 1), headers=f.auth(bank_key),
                           timeout=60)  # fmt: skip
        assert banks.status_code == 403 and combiner.waiting == 6
        lock.commit()  # the lock goes: the first is written, then the six as one batch
        assert first.result().status_code == 201
        responses = [a.result() for a in answers]

    assert [r.status_code for r in responses] == [201, 201, 409, 201, 201, 201]
    count, size = _histogram("registry_transfers_together")
    assert (count - before[0], size - before[1]) == (1, 6)  # one batch of six, tried
    assert metrics.TOGETHER_ALONE._value.get() - alone_before == 1  # the refused one, answered alone

    refused = responses[2].json()
    assert refused["code"] == "insufficient_units" and str(sources[2]) in refused["detail"]
    alone = post(2)  # the same request again, now with nothing waiting: the path alone's own refusal
    assert alone.status_code == 409
    assert {k: alone.json()[k] for k in ("code", "title", "detail")} == {
        k: refused[k] for k in ("code", "title", "detail")
    }

    for n in (0, 1, 3, 4, 5):
        answer = responses[n].json()
        assert answer["quantity"] == asks[n] and answer["from_account_id"] == str(sources[n])
        assert [b["quantity"] for b in answer["blocks"]] == [asks[n]]
        assert _available(committed_engine, targets[n]) == asks[n]
    assert _available(committed_engine, targets[2]) == 0

    with committed_engine.connect() as conn:
        events = conn.execute(
            text("""SELECT e.request_id, e.operator, e.from_account_id, e.serial_end - e.serial_start + 1 AS q
                      FROM audit_event e WHERE e.request_id LIKE 'together-%' ORDER BY e.request_id""")
        ).all()
    # each request's own event, its own request id and operator, in the batch's one transaction
    assert [(e.request_id, e.operator, e.from_account_id, e.q) for e in events] == [
        (f"together-{n}", f"op-{n % 2 + 1}", sources[n], asks[n]) for n in (0, 1, 3, 4, 5)
    ]

    for n in (0, 1, 3, 4):  # each keyed answer stored with its key: a retry replays it
        replay = post(n)
        assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
        assert replay.text == responses[n].text
        assert _available(committed_engine, targets[n]) == asks[n]
    with committed_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT key FROM idempotency_record WHERE key LIKE 'batch-%' ORDER BY key")
        ).scalars()
        assert list(stored) == [
            "batch-0",
            "batch-1",
            "batch-3",
            "batch-4",
        ]  # the refused one's key given back

    _assert_whole(committed_engine)


def test_many_concurrent_transfers_some_refused_keep_the_ledger_whole(
    committed_engine: Engine, live: Live
) -> None:
    """Contention on a few accounts, through the app's own combiner: every request answered 201 or 409, units
    neither lost nor made, each answer's units where it says they went."""
    with unit_of_work(committed_engine) as s:
        key = f.key(s, f.party(s, PartyKind.EXCHANGE), Role.EXCHANGE)
        accounts = [f.account(s).id for _ in range(6)]
        for account in accounts:
            f.issue(s, account, 300)

    def post(n: int) -> Any:
        a, b = accounts[n % 6], accounts[(n * 7 + 1) % 6]
        if a == b:
            b = accounts[(n + 1) % 6]
        body = {
            "from_account_id": str(a),
            "to_account_id": str(b),
            "credit_type": "CCER",
            "quantity": 40 + n % 5,
        }
        response = httpx.post(f"{live.url}/v1/transfers", json=body,
                              headers={**f.auth(key), "Idempotency-Key": f"many-{n}"}, timeout=60)  # fmt: skip
        return response.status_code, (response.json().get("code") if response.status_code != 201 else None)

    with ThreadPoolExecutor(max_workers=24) as pool:
        outcomes = list(pool.map(post, range(150)))
    assert {status for status, _ in outcomes} <= {201, 409}
    assert {code for status, code in outcomes if status == 409} <= {"insufficient_units"}
    assert sum(_available(committed_engine, a) for a in accounts) == 6 * 300
    with committed_engine.connect() as conn:
        transfers = conn.execute(
            text(
                "SELECT count(DISTINCT request_id) FROM audit_event "
                "WHERE kind = 'transfer' AND from_account_id = ANY(:a)"
            ),
            {"a": accounts},
        ).scalar_one()
    assert transfers == sum(status == 201 for status, _ in outcomes)
    _assert_whole(committed_engine)


def test_a_batch_stuck_on_a_lock_held_elsewhere_gives_its_transfers_back_to_go_alone(
    committed_engine: Engine, live: Live
) -> None:
    """A batch waits a second for a lock (not the ten a request alone may), then fails whole; its transfers
    are written alone, each waiting only for its own accounts."""
    combiner = _one_lane(live)
    with unit_of_work(committed_engine) as s:
        key = f.key(s, f.party(s, PartyKind.EXCHANGE), Role.EXCHANGE)
        blocked, beyond = f.account(s).id, f.account(s).id
        busy, free, to_busy, to_free = (f.account(s).id for _ in range(4))
        for account in (blocked, busy, free):
            f.issue(s, account, 100)
    before = _histogram("registry_transfers_together")
    alone_before = metrics.TOGETHER_ALONE._value.get()

    def post(body: dict[str, object]) -> httpx.Response:
        headers = {**f.auth(key), "Idempotency-Key": str(uuid.uuid4())}
        return httpx.post(f"{live.url}/v1/transfers", json=body, headers=headers, timeout=60)

    url = committed_engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with (
        psycopg.connect(url) as holds_lane,
        psycopg.connect(url) as elsewhere,
        psycopg.connect(url, autocommit=True) as watch,
        ThreadPoolExecutor(max_workers=4) as pool,
    ):
        holds_lane.execute("SELECT 1 FROM account WHERE id = %s FOR UPDATE", [blocked])
        elsewhere.execute(
            "SELECT 1 FROM account WHERE id = %s FOR UPDATE", [busy]
        )  # a long transaction's lock
        first = pool.submit(post, _body(blocked, beyond, 10))
        _until(_lock_waits(watch, 1), "the first transfer to wait on its account's lock")
        answers = [pool.submit(post, _body(busy, to_busy, 10)), pool.submit(post, _body(free, to_free, 10))]
        _until(lambda: combiner.waiting == 2, "both to queue behind it")
        holds_lane.commit()  # the first goes; the two as a batch, which meets the other lock
        assert first.result().status_code == 201
        # within a few seconds: the batch's own lock timeout (1 s), not a request's (10 s)
        _until(
            lambda: metrics.TOGETHER_ALONE._value.get() - alone_before == 2,
            "the batch to give both back",
            seconds=6,
        )
        assert answers[1].result().status_code == 201  # alone, it needs no lock held elsewhere
        assert not answers[0].done()  # alone, it waits for its own account's lock
        elsewhere.commit()
        assert answers[0].result().status_code == 201
    assert _histogram("registry_transfers_together") == before  # no batch was written
    assert _available(committed_engine, to_busy) == 10 and _available(committed_engine, to_free) == 10
    _assert_whole(committed_engine)
