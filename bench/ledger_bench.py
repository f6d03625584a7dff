"""Transfers per second through the HTTP API with concurrent clients, beside pgbench TPC-B on the same
PostgreSQL in the same run, and their ratio.

    .venv/bin/python -m bench.ledger_bench [--seconds 20] [--clients 1,8,32] [--workers 2] [--history 1000]

Each transfer is a full API call: key check, idempotency key, account locks, block split and merge,
two hash-chained audit events' worth of work, commit. The ledger has a past (`--history` accounts and
20,000 settled transfers among them, analyzed; 0 for none): the plans a ledger in service gets. Results
go to bench/results/ledger.json."""

from __future__ import annotations

import json
import random
import time
import uuid

from sqlalchemy import text

from bench.common import (
    ROOT,
    Baseline,
    autovacuum_naptime,
    check_after,
    create_database,
    free_port,
    fresh_server,
    funded_accounts,
    load_arguments,
    pgbench_tps,
    require_wrk,
    start_app,
    wrk_run,
)
from registry.access import service as access
from registry.clock import SystemClock
from registry.db import make_engine, unit_of_work
from registry.ledger import service as ledger
from registry.ledger import settlement
from registry.ledger.models import PartyKind
from registry.ledger.service import Selection
from registry.principal import SYSTEM, Actor, Role


def setup(url: str, pairs: int) -> tuple[str, list[tuple[str, str]]]:
    engine = make_engine(url, pool_size=1)
    actor = Actor(SYSTEM, SystemClock().now())
    with unit_of_work(engine) as s:
        exchange = ledger.create_party(
            s, actor, name="Bench Exchange", kind=PartyKind.EXCHANGE, credit_code=None
        )
        key = access.create_key(s, party=exchange, role=Role.EXCHANGE, operator="bench", now=actor.at).key
        owner = ledger.create_party(
            s, actor, name="Bench Holder", kind=PartyKind.ENTERPRISE, credit_code=None
        )
        accounts = []
        for _ in range(pairs):
            a = ledger.create_account(s, actor, party_id=owner.id).id
            b = ledger.create_account(s, actor, party_id=owner.id).id
            ledger.issue(
                s,
                actor,
                credit_type="CCER",
                project_code="BENCH",
                project_type="bench",
                vintage=2025,
                quantity=10_000_000,
                account_id=a,
            )
            accounts.append((str(a), str(b)))
    engine.dispose()
    return key, accounts


def history(url: str, accounts: int, batches: int) -> None:
    """A ledger with a past, as a transfer meets it in service: `accounts` more accounts, each issued a batch,
    then `batches` settlement batches of 10,000 transfers among them; then ANALYZE. On the 64 pairs' few rows
    alone the planner's choices followed whether autovacuum had analyzed them before the server stopped
    (sequential scans of tables that then grew through the count): the same code counted 3.8 M or 4.4 M."""
    engine = make_engine(url, pool_size=1)
    actor = Actor(SYSTEM, SystemClock().now())
    with unit_of_work(engine) as s:
        owner = ledger.create_party(
            s, actor, name="Bench History", kind=PartyKind.ENTERPRISE, credit_code=None
        )
        ids = funded_accounts(
            s, actor, owner.id, accounts, quantity=1_000_000, project_code="HISTORY", project_type="bench"
        )
    rand = random.Random(11)
    for _ in range(batches if accounts >= 2 else 0):
        lines = []
        for _ in range(10_000):
            a, b = rand.sample(ids, 2)
            lines.append(settlement.Line(a, b, Selection("CCER", rand.randint(1, 10))))
        with unit_of_work(engine) as s:
            settlement.settle(s, actor, lines)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


# Every request a new Idempotency-Key: the run's nonce, the wrk thread and its counter. (wrk's threads
# share one random seed, so random keys collided across threads: the second of a pair waited for the
# first and replayed it, and half the "transfers" measured were replays.)
LUA = """
local bodies = {%s}
local n = #bodies
local counter = 0
local threads = {}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
setup = function(thread) table.insert(threads, thread); thread:set("tid", #threads) end
init = function(args) math.randomseed(tid * 7919 + os.time()) end
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = string.format("%s-%%d-%%d", tid, counter)
  return wrk.format(nil, "/v1/transfers", nil, bodies[math.random(n)])
end
"""


def run_wrk(
    wrk: str, port: int, key: str, pairs: list[tuple[str, str]], clients: int, seconds: int
) -> dict[str, float]:
    bodies = ",".join(
        "'"
        + json.dumps({"from_account_id": a, "to_account_id": b, "credit_type": "CCER", "quantity": 1})
        + "'"
        for a, b in pairs
    )
    return {
        "clients": clients,
        **wrk_run(wrk, f"http://127.0.0.1:{port}", LUA % (bodies, key, uuid.uuid4().hex), clients, seconds),
    }


def main() -> None:
    args = load_arguments(__doc__.splitlines()[0], population="pairs", default=64, history=1_000, naptime=1)
    wrk = require_wrk()

    server = fresh_server()
    url = create_database(server, "registry_bench")
    key, pairs = setup(url, args.pairs)
    history(url, args.history, 2)
    before = pgbench_tps(server, clients=8, seconds=args.seconds)  # and after: Baseline
    autovacuum_naptime(server, args.naptime or None)
    port = free_port()
    app = start_app(url, workers=args.workers, port=port)
    try:
        results = [run_wrk(wrk, port, key, pairs, int(c), args.seconds) for c in args.clients.split(",")]
    finally:
        app.terminate()
        app.wait(timeout=30)
    time.sleep(1)
    baseline = Baseline(before, pgbench_tps(server, clients=8, seconds=args.seconds))
    pgbench = baseline.tps

    problems, verified = check_after(url)
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        transfers = conn.execute(
            text("SELECT count(DISTINCT request_id) FROM audit_event WHERE kind = 'transfer'")
        ).scalar_one()
    engine.dispose()

    print(
        f"\nledger_bench: {args.workers} app worker(s), {args.pairs} account pairs, {args.seconds}s per run, "
        f"a past of {args.history} accounts and {20_000 if args.history >= 2 else 0} settled transfers"
    )
    print(f"{'clients':>8} {'transfers/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for r in results:
        print(
            f"{r['clients']:>8} {r['rps']:>12.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['non_2xx']:>8}"
        )
    best = max(r["rps"] for r in results)
    print(f"pgbench tpcb-like, 8 clients, same server: {baseline}")
    print(f"ratio best API transfers/s / pgbench TPS: {best / pgbench:.2f}")
    print(
        f"after the run: {transfers} transfers committed for {sum(r['requests'] for r in results)} requests "
        f"answered (each its own Idempotency-Key: no replays), ledger {problems or 'consistent'}, "
        f"audit chains {'verify' if verified.ok else 'BROKEN'} ({verified.events} events)"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "ledger.json").write_text(
        json.dumps(
            {
                "results": results,
                "pgbench_tps": pgbench,
                "pgbench_before_after": [baseline.before, baseline.after],
                "ratio": best / pgbench,
                "workers": args.workers,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
