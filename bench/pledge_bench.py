"""Register + confirm cycles per second through the HTTP API at 1, 8 and 32 concurrent clients, beside
pgbench tpcb-like TPS on the same PostgreSQL in the same run, and their ratio.

    .venv/bin/python -m bench.pledge_bench [--seconds 20] [--clients 1,8,32] [--workers 2]

A cycle is two requests: a bank's `POST /v1/pledges` (10 units held from one of 64 pledgors' accounts)
and the exchange's `POST /v1/instructions/{id}/confirm` (units frozen, registration number assigned).
wrk drives both from one Lua script: each registration's instruction id is queued, and a connection
that is free confirms the oldest queued one before registering anew. Latencies are per request."""

from __future__ import annotations

import json
import re
import time

from sqlalchemy import text

from bench.common import (
    ROOT,
    check_after,
    create_database,
    free_port,
    fresh_server,
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
from registry.ledger.models import PartyKind
from registry.principal import SYSTEM, Actor, Role

LUA = """
local bodies = {%s}
local bank = "Bearer %s"
local exchange = "Bearer %s"
local queue = {}
confirms = 0
registers = 0
request = function()
  local id = table.remove(queue, 1)
  if id then
    confirms = confirms + 1
    return wrk.format("POST", "/v1/instructions/" .. id .. "/confirm",
                      {["Authorization"] = exchange, ["Content-Type"] = "application/json"}, nil)
  end
  registers = registers + 1
  return wrk.format("POST", "/v1/pledges", {["Authorization"] = bank, ["Content-Type"] = "application/json"},
                    bodies[math.random(#bodies)])
end
response = function(status, headers, body)
  if status == 201 then
    local id = string.match(body, '"instructions":%%[{"id":"([^"]+)"')
    if id then table.insert(queue, id) end
  end
end
done = function(summary, latency, requests)
  local c, r = 0, 0
  for _, t in ipairs(threads) do c = c + t:get("confirms"); r = r + t:get("registers") end
  io.write(string.format("CYCLES confirms=%%d registers=%%d\\n", c, r))
end
threads = {}
setup = function(thread) table.insert(threads, thread) end
"""


def setup(url: str, pledgors: int) -> tuple[str, str, list[str]]:
    engine = make_engine(url, pool_size=1)
    actor = Actor(SYSTEM, SystemClock().now())
    with unit_of_work(engine) as s:
        exchange = ledger.create_party(
            s, actor, name="Bench Exchange", kind=PartyKind.EXCHANGE, credit_code=None
        )
        bank = ledger.create_party(s, actor, name="Bench Bank", kind=PartyKind.BANK, credit_code=None)
        borrower = ledger.create_party(
            s, actor, name="Bench Borrower", kind=PartyKind.ENTERPRISE, credit_code=None
        )
        exchange_key = access.create_key(
            s, party=exchange, role=Role.EXCHANGE, operator="op", now=actor.at
        ).key
        bank_key = access.create_key(s, party=bank, role=Role.BANK, operator=None, now=actor.at).key
        bodies = []
        for n in range(pledgors):
            owner = ledger.create_party(
                s, actor, name=f"Pledgor {n}", kind=PartyKind.ENTERPRISE, credit_code=None
            )
            account = ledger.create_account(s, actor, party_id=owner.id).id
            ledger.issue(s, actor, credit_type="CCER", project_code="BENCH", project_type="bench", vintage=2025,
                         quantity=10_000_000, account_id=account)  # fmt: skip
            bodies.append(json.dumps({
                "pledgor_account_id": str(account), "borrower_party_id": str(borrower.id),
                "loan": {"contract_no": f"B-{n}", "principal": "1000000.00", "start_date": "2026-01-01",
                         "maturity_date": "2026-12-31"},
                "collateral": {"credit_type": "CCER", "quantity": 10},
                "terms": {"max_pledge_rate": "0.70", "warning_ratio": "1.30", "disposal_ratio": "1.10"},
            }, separators=(",", ":")))  # fmt: skip
    engine.dispose()
    return bank_key, exchange_key, bodies


def main() -> None:
    args = load_arguments(__doc__.splitlines()[0], population="pledgors", default=64)
    wrk = require_wrk()
    server = fresh_server()
    url = create_database(server, "registry_bench")
    bank_key, exchange_key, bodies = setup(url, args.pledgors)
    script = LUA % (",".join(f"'{b}'" for b in bodies), bank_key, exchange_key)
    port = free_port()
    app = start_app(url, workers=args.workers, port=port)
    results = []
    try:
        for clients in (int(c) for c in args.clients.split(",")):
            run = wrk_run(wrk, f"http://127.0.0.1:{port}", script, clients, args.seconds)
            m = re.search(r"CYCLES confirms=(\d+)", run["output"])
            cycles = int(m.group(1)) / args.seconds if m else 0.0
            results.append(
                {
                    "clients": clients,
                    "cycles_per_s": cycles,
                    "requests_per_s": run["rps"],
                    "p50_ms": run["p50_ms"],
                    "p99_ms": run["p99_ms"],
                    "non_2xx": run["non_2xx"],
                }
            )
    finally:
        app.terminate()
        app.wait(timeout=30)
    time.sleep(1)
    pgbench = pgbench_tps(server, clients=8, seconds=args.seconds)
    problems, verified = check_after(url)
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        active = conn.execute(text("SELECT count(*) FROM pledge WHERE status = 'active'")).scalar_one()
    engine.dispose()

    print(f"\npledge_bench: {args.workers} app worker(s), {args.pledgors} pledgors, {args.seconds}s per run")
    print(f"{'clients':>8} {'cycles/s':>9} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for r in results:
        print(f"{r['clients']:>8} {r['cycles_per_s']:>9.0f} {r['requests_per_s']:>7.0f} {r['p50_ms']:>8.1f} "
              f"{r['p99_ms']:>8.1f} {r['non_2xx']:>8}")  # fmt: skip
    best = max(r["cycles_per_s"] for r in results)
    print(f"pgbench tpcb-like, 8 clients, same server: {pgbench:.0f} TPS")
    print(f"ratio best register+confirm cycles/s / pgbench TPS: {best / pgbench:.3f}")
    print(f"after the run: {active} active pledges, ledger {problems or 'consistent'}, "
          f"audit chains {'verify' if verified.ok else 'BROKEN'} ({verified.events} events)")  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "pledge.json").write_text(json.dumps({"results": results, "pgbench_tps": pgbench,
                                                  "ratio": best / pgbench}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
