"""Full registrations per second through the HTTP API at 1, 8 and 32 concurrent clients, beside pgbench
tpcb-like TPS on the same PostgreSQL in the same run, and their ratio.

    .venv/bin/python -m bench.pledge_bench [--seconds 20] [--clients 1,8,32] [--workers 2] [--history 0]

A registration is three requests, as the joint application (共同申请) makes it: the bank's `POST
/v1/pledges` (a new loan, 100 units asked of one of 64 pledgors' accounts), the pledgor's `POST
/v1/instructions/{id}/consent` with its own key (the units are held, the request reaches the queue) and the
exchange's `POST /v1/instructions/{id}/confirm` (valued at today's price, units frozen, registration
number and certificate issued). wrk drives all three from one Lua script: a free connection confirms the
oldest consented request, else consents to the oldest asked one, else asks anew. Latencies are per
request; a cycle is a confirmation."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from bench.common import (
    ROOT,
    Baseline,
    autovacuum_naptime,
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
from bench.ledger_bench import history
from registry.access import service as access
from registry.clock import SystemClock
from registry.db import make_engine, unit_of_work
from registry.ledger import service as ledger
from registry.ledger.models import PartyKind
from registry.principal import SYSTEM, Actor, Role

LUA = """
local bodies = {%s}
local pledgors = {%s}
local bank = "Bearer %s"
local exchange = "Bearer %s"
local to_consent, to_confirm = {}, {}
confirms, consents, registers = 0, 0, 0
local function headers(key) return {["Authorization"] = key, ["Content-Type"] = "application/json"} end
request = function()
  local id = table.remove(to_confirm, 1)
  if id then
    confirms = confirms + 1
    return wrk.format("POST", "/v1/instructions/" .. id .. "/confirm", headers(exchange), nil)
  end
  local asked = table.remove(to_consent, 1)
  if asked then
    consents = consents + 1
    return wrk.format("POST", "/v1/instructions/" .. asked[1] .. "/consent", headers(asked[2]), nil)
  end
  registers = registers + 1
  local body = string.gsub(bodies[math.random(#bodies)], "CONTRACT", tid .. "-" .. registers)
  return wrk.format("POST", "/v1/pledges", headers(bank), body)
end
local shown = false
response = function(status, headers, body)
  if status >= 300 and not shown then shown = true; io.write("FIRST " .. status .. " " .. body .. "\\n") end
  if status == 201 then  -- asked: the pledgor consents next, with its key
    local id = string.match(body, '"instructions":%%[{"id":"([^"]+)"')
    local account = string.match(body, '"pledgor_account_id":"([^"]+)"')
    if id and pledgors[account] then table.insert(to_consent, {id, pledgors[account]}) end
  elseif status == 200 and string.find(body, '"status":"pending"', 1, true) then  -- consented
    local id = string.match(body, '"id":"([^"]+)"')
    if id then table.insert(to_confirm, id) end
  end
end
done = function(summary, latency, requests)
  local c, k, r = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("confirms"); k = k + t:get("consents"); r = r + t:get("registers")
  end
  io.write(string.format("CYCLES confirms=%%d consents=%%d registers=%%d\\n", c, k, r))
end
threads = {}
setup = function(thread) table.insert(threads, thread); thread:set("tid", #threads) end
"""


def setup(url: str, pledgors: int) -> tuple[str, str, list[str], dict[str, str]]:
    """The exchange and a bank with their keys; pledgors with an account of CCER and a key each; a month of
    CCER prints at 60.00, so that each confirmation values its request (100 units for a loan of 3,000.00:
    a pledge rate of 0.5)."""
    from datetime import timedelta
    from decimal import Decimal

    from registry.valuation import prices

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
        today = actor.at.date()
        prices.record_trades(s, actor, [prices.Trade("CCER", today - timedelta(days=d), Decimal("60.00"), 1000)
                                        for d in range(1, 31)])  # fmt: skip
        bodies, keys = [], {}
        for n in range(pledgors):
            owner = ledger.create_party(
                s, actor, name=f"Pledgor {n}", kind=PartyKind.ENTERPRISE, credit_code=None
            )
            account = ledger.create_account(s, actor, party_id=owner.id).id
            ledger.issue(s, actor, credit_type="CCER", project_code="BENCH", project_type="bench", vintage=2025,
                         quantity=10_000_000, account_id=account)  # fmt: skip
            keys[str(account)] = access.create_key(s, party=owner, role=Role.HOLDER, operator=f"pledgor-{n}",
                                                   now=actor.at).key  # fmt: skip
            bodies.append(json.dumps({
                "pledgor_account_id": str(account), "borrower_party_id": str(borrower.id),
                "loan": {"contract_no": "B-CONTRACT", "principal": "3000.00", "start_date": today.isoformat(),
                         "maturity_date": (today + timedelta(days=365)).isoformat()},
                "collateral": {"credit_type": "CCER", "quantity": 100},
                "terms": {"max_pledge_rate": "0.70", "warning_ratio": "1.30", "disposal_ratio": "1.10"},
            }, separators=(",", ":")))  # fmt: skip
    engine.dispose()
    return bank_key, exchange_key, bodies, keys


@dataclass(frozen=True)
class World:
    """What a pledge load bench starts from: its options, a fresh server and database with the bench's
    parties, keys and prints (setup), its past, and pgbench's figure before the runs (and after: Baseline)."""

    args: Any
    wrk: str
    server: str
    url: str
    bank_key: str
    exchange_key: str
    bodies: list[str]
    keys: dict[str, str]
    pgbench_before: float


def prepare(description: str) -> World:
    args = load_arguments(description, population="pledgors", default=64, history=0, naptime=1)
    wrk = require_wrk()
    server = fresh_server()
    url = create_database(server, "registry_bench")
    bank_key, exchange_key, bodies, keys = setup(url, args.pledgors)
    history(url, args.history, 2)  # none by default: the figures of earlier stops were measured without
    before = pgbench_tps(server, clients=8, seconds=args.seconds)
    autovacuum_naptime(server, args.naptime or None)
    return World(args, wrk, server, url, bank_key, exchange_key, bodies, keys, before)


def main() -> None:
    world = prepare(__doc__.splitlines()[0])
    args, wrk, server, url, before = world.args, world.wrk, world.server, world.url, world.pgbench_before
    bank_key, exchange_key, bodies, keys = world.bank_key, world.exchange_key, world.bodies, world.keys
    pledgor_keys = ",".join(f'["{account}"] = "Bearer {key}"' for account, key in keys.items())
    script = LUA % (",".join(f"'{b}'" for b in bodies), pledgor_keys, bank_key, exchange_key)
    port = free_port()
    app = start_app(url, workers=args.workers, port=port)
    results = []
    try:
        for n, clients in enumerate(int(c) for c in args.clients.split(",")):
            loans = script.replace(
                "B-CONTRACT", f"B{n}-CONTRACT"
            )  # each run's loans new: one open pledge a loan
            run = wrk_run(wrk, f"http://127.0.0.1:{port}", loans, clients, args.seconds)
            m = re.search(r"CYCLES confirms=(\d+)", run["output"])
            refused = re.search(r"^FIRST (.*)$", run["output"], re.M)
            if refused:  # what went wrong, for whoever reads a run with non-2xx answers
                print(f"{clients} clients: first refusal: {refused.group(1)[:400]}")
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
        # Certificates are rendered off the request path, at a lower CPU priority: how far they kept up.
        issued, rendered = _certificates(url)
    finally:
        app.terminate()
        app.wait(timeout=30)
    time.sleep(1)
    baseline = Baseline(before, pgbench_tps(server, clients=8, seconds=args.seconds))
    pgbench = baseline.tps
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
    print(f"pgbench tpcb-like, 8 clients, same server: {baseline}")
    print(f"ratio best full registrations/s (ask, consent, confirm) / pgbench TPS: {best / pgbench:.3f}")
    print(f"certificates: {issued} issued, {rendered} rendered by the end of the runs (the rest wait for "
          f"idle CPU and the sweep)")  # fmt: skip
    print(f"after the run: {active} active pledges, ledger {problems or 'consistent'}, "
          f"audit chains {'verify' if verified.ok else 'BROKEN'} ({verified.events} events)")  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "pledge.json").write_text(json.dumps({"results": results, "pgbench_tps": pgbench,
                                                  "pgbench_before_after": [baseline.before, baseline.after],
                                                  "ratio": best / pgbench, "certificates_issued": issued,
                                                  "certificates_rendered": rendered}, indent=2))  # fmt: skip


def _certificates(url: str) -> tuple[int, int]:
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT count(*), count(pdf) FROM certificate")).one()
    engine.dispose()
    return int(row[0]), int(row[1])


if __name__ == "__main__":
    main()
