"""Each state-changing request of a pledge's life on its own, at each client count, beside pgbench
tpcb-like TPS on the same PostgreSQL in the same run: the bank's ask, the pledgor's consent, the exchange's
confirmation, the bank's release and the exchange's confirmation of it.

    .venv/bin/python -m bench.lifecycle_bench [--seconds 10] [--clients 8,32] [--workers 2] [--history 0]

bench/pledge_bench.py measures the full registration, its three requests mixed; here each kind is a wrk run
of its own, so that its rate and its latencies are its own. At each client count the asks run for
`--seconds`; each later phase takes what the one before left (the asked requests are consented, the
consented ones confirmed, the pledges so made released, the releases confirmed), each request on its own
instruction, and ends when they run out or after `--seconds`. A rate is the requests answered 2xx from
the run's first request to its last answer (wrk's own duration is the whole `-d`, even for a run that ran
out); a thread that has run out sends its last request again until the run stops, answered 409 (at most
one a connection): those are not counted as refusals. The same server's pgbench, before and after, is the
baseline (bench.common.Baseline). Beside each rate, the CPU a request cost the app's request workers
(their certificate renderers not counted) and PostgreSQL over the whole run (/proc: for a run that ran
out, what the idle rest of it did too, the catching up of certificates' storage and autovacuum), and the cap: the
rate PostgreSQL's CPU alone would allow on this machine's cores if the app cost nothing, against the same
pgbench — how far any change on the app's side could take that request; and, after the runs, the
framework's floor (bench/floor_app.py, one `UPDATE` a request, the same workers) at each client count, and
each request's rate as a share of it. Results go to bench/results/lifecycle.json."""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

import psycopg

from bench.common import (
    ROOT,
    Baseline,
    Spent,
    check_after,
    create_database,
    free_port,
    pgbench_tps,
    require_wrk,
    start_app,
    wrk_run,
)
from bench.floor_bench import ACCOUNTS, start_floor
from bench.floor_bench import LUA as FLOOR_LUA
from bench.pledge_bench import prepare

# Each thread takes every n-th item (n threads); when its share runs out it stops, resending its last item
# to the connections still asking (a request the API refuses: the same decision twice). wrk's own duration
# is always the whole `-d` (its main thread sleeps it out), so a phase that runs out is timed here: from
# the first request sent to the last 2xx answered, over all threads.
ITEMS = """
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_usec; } bench_timeval;
           int gettimeofday(bench_timeval *tv, void *tz); ]]
local tv = ffi.new("bench_timeval")
local function now() ffi.C.gettimeofday(tv, nil); return tonumber(tv.tv_sec) * 1e6 + tonumber(tv.tv_usec) end
local items = {%s}
ok, again, other, last, first, final = 0, 0, 0, nil, nil, nil
local mine, at = {}, 1
setup = function(thread) table.insert(threads, thread); thread:set("tid", #threads) end
init = function()
  local n = %d
  for i = tid, #items, n do table.insert(mine, items[i]) end
end
request = function()
  first = first or now()
  local item = mine[at]
  if item == nil then
    wrk.thread:stop()
    item = last or items[1]
  else
    at = at + 1
    last = item
  end
  local headers = {["Authorization"] = "Bearer " .. item[2], ["Content-Type"] = "application/json"}
  return wrk.format("POST", item[1], headers, item[3])
end
response = function(status, headers, body)
  if status < 300 then ok = ok + 1; final = now()
  elseif status == 409 then again = again + 1; seen409 = seen409 or body
  else
    other = other + 1
    if not shown then shown = true; io.write("FIRST " .. status .. " " .. body .. "\\n") end
  end
end
done = function(summary, latency, requests)
  local n, a, o, s, from, to = 0, 0, 0, nil, nil, nil
  for _, t in ipairs(threads) do
    n = n + t:get("ok"); a = a + t:get("again"); o = o + t:get("other"); s = s or t:get("seen409")
    local f, l = t:get("first"), t:get("final")
    if f and (not from or f < from) then from = f end
    if l and (not to or l > to) then to = l end
  end
  local us = (from and to) and (to - from) or summary.duration
  io.write(string.format("DONE ok=%%d us=%%d again=%%d other=%%d\\n", n, us, a, o))
  if s then io.write("CONFLICT " .. s .. "\\n") end
end
threads = {}
"""

# Asks: a new loan each (one open pledge a loan), of one of the pledgors' accounts.
ASKS = """
local bodies = {%s}
local bank = "Bearer %s"
ok, asks = 0, 0
setup = function(thread) table.insert(threads, thread); thread:set("tid", #threads) end
request = function()
  asks = asks + 1
  local body = string.gsub(bodies[math.random(#bodies)], "CONTRACT", "%s-" .. tid .. "-" .. asks)
  return wrk.format("POST", "/v1/pledges", {["Authorization"] = bank, ["Content-Type"] = "application/json"},
                    body)
end
response = function(status, headers, body)
  if status < 300 then ok = ok + 1 elseif not shown then
    shown = true; io.write("FIRST " .. status .. " " .. body .. "\\n")
  end
end
done = function(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("ok") end
  io.write(string.format("DONE ok=%%d us=%%d\\n", n, summary.duration))
end
threads = {}
"""

KINDS = ("ask", "consent", "confirm", "release", "confirm release")


def _lua_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def items_script(items: list[tuple[str, str, str]], threads: int) -> str:
    rows = ",".join("{" + ",".join(_lua_string(v) for v in item) + "}" for item in items)
    return ITEMS % (rows, threads)


def next_items(conn: psycopg.Connection[Any], kind: str, bank: str, exchange: str,
               pledgors: dict[str, str]) -> list[tuple[str, str, str]]:  # fmt: skip
    """What the phase of `kind` acts on: what the phase before it left, oldest first."""
    if kind == "consent":
        rows = conn.execute(
            "SELECT i.id, p.pledgor_account_id FROM instruction i JOIN pledge p ON p.id = i.pledge_id"
            " WHERE i.type = 'register' AND i.status = 'awaiting_consent' ORDER BY i.seq"
        ).fetchall()
        return [(f"/v1/instructions/{i}/consent", pledgors[str(a)], "") for i, a in rows]
    if kind in ("confirm", "confirm release"):
        which = "register" if kind == "confirm" else "release"
        rows = conn.execute(
            "SELECT id FROM instruction WHERE type = %s AND status = 'pending' ORDER BY seq", (which,)
        ).fetchall()
        return [(f"/v1/instructions/{i}/confirm", exchange, "") for (i,) in rows]
    assert kind == "release"
    rows = conn.execute(
        "SELECT p.id FROM pledge p WHERE p.status = 'active' AND NOT EXISTS ("
        " SELECT 1 FROM instruction i WHERE i.pledge_id = p.id AND i.status IN ('awaiting_consent', 'pending'))"
        " ORDER BY p.confirmed_at"
    ).fetchall()
    return [(f"/v1/pledges/{p}/instructions", bank, '{"type":"release"}') for (p,) in rows]


def measured(run: dict[str, Any], kind: str, clients: int, cpu: tuple[float, float]) -> dict[str, Any]:
    done = re.search(r"DONE ok=(\d+) us=(\d+)(?: again=(\d+) other=(\d+))?", run["output"])
    assert done, run["output"]
    answered, micros = int(done.group(1)), int(done.group(2))
    # A phase's last requests, resent by a thread that has run out, are 409s: at most one a connection.
    again, other = int(done.group(3) or 0), int(done.group(4) or run["non_2xx"])
    refused = other + max(again - clients, 0)
    if refused:  # what went wrong, for whoever reads a run with refusals
        first = re.search(r"^(?:FIRST|CONFLICT) (.*)$", run["output"], re.M)
        print(f"{kind}, {clients} clients: {refused} refused; {first.group(1)[:400] if first else ''}")
    return {
        "kind": kind,
        "clients": clients,
        "answered": answered,
        "per_s": answered / (micros / 1e6) if micros else 0.0,
        "p50_ms": run["p50_ms"],
        "p99_ms": run["p99_ms"],
        "refused": refused,
        "app_cpu_ms": 1000 * cpu[0] / answered if answered else 0.0,
        "postgres_cpu_ms": 1000 * cpu[1] / answered if answered else 0.0,
    }


def floor(server: str, workers: int, clients: list[int], seconds: int) -> dict[int, float]:
    """The framework's floor (bench/floor_app.py: one UPDATE a request) at each client count, on the same
    server with the same workers, after the registry's runs."""
    wrk = require_wrk()
    port = free_port()
    app = start_floor(create_database(server, "floor", migrated=False), workers=workers, port=port)
    try:
        return {
            c: wrk_run(wrk, f"http://127.0.0.1:{port}", FLOOR_LUA % ACCOUNTS, c, seconds)["rps"]
            for c in clients
        }
    finally:
        app.terminate()
        app.wait(timeout=30)


def main() -> None:
    world = prepare(__doc__.splitlines()[0])
    args, wrk, server, url, before = world.args, world.wrk, world.server, world.url, world.pgbench_before
    bank_key, exchange_key, bodies, keys = world.bank_key, world.exchange_key, world.bodies, world.keys
    port = free_port()
    app = start_app(url, workers=args.workers, port=port)
    base = f"http://127.0.0.1:{port}"
    results: list[dict[str, Any]] = []
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    asks = ",".join(_lua_string(b) for b in bodies)
    try:
        with psycopg.connect(plain, autocommit=True) as conn:
            for n, clients in enumerate(int(c) for c in args.clients.split(",")):
                threads = min(clients, 2)  # as wrk_run starts it
                for kind in KINDS:
                    if kind == "ask":
                        script = ASKS % (asks, bank_key, f"L{n}")
                    else:
                        items = next_items(conn, kind, bank_key, exchange_key, keys)
                        if not items:
                            raise SystemExit(f"nothing left to {kind}: see the refusals above")
                        script = items_script(items, threads)
                    with Spent(app) as spent:
                        run = wrk_run(wrk, base, script, clients, args.seconds)
                    results.append(measured(run, kind, clients, (spent.app, spent.db)))
    finally:
        app.terminate()
        app.wait(timeout=30)
    floors = floor(server, args.workers, [r["clients"] for r in results if r["kind"] == "ask"], args.seconds)
    time.sleep(1)
    baseline = Baseline(before, pgbench_tps(server, clients=8, seconds=args.seconds))
    problems, verified = check_after(url)

    print(f"\nlifecycle_bench: {args.workers} app worker(s), {args.pledgors} pledgors, up to {args.seconds}s a run;"
          " CPU a request: the app's workers and PostgreSQL; cap: the requests/s PostgreSQL's CPU alone would"
          " allow on this machine's cores, against pgbench")  # fmt: skip
    print(f"{'request':>16} {'clients':>8} {'answered':>9} {'per s':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'refused':>8} {'app ms':>7} {'db ms':>6} {'ratio':>6} {'cap':>6}")  # fmt: skip
    cores = os.cpu_count() or 1
    for r in results:
        r["ratio"] = r["per_s"] / baseline.tps
        r["of_floor"] = r["per_s"] / floors[r["clients"]]
        r["database_cap_ratio"] = (
            cores * 1000 / r["postgres_cpu_ms"] / baseline.tps if r["postgres_cpu_ms"] else 0.0
        )
        print(f"{r['kind']:>16} {r['clients']:>8} {r['answered']:>9} {r['per_s']:>7.0f} {r['p50_ms']:>8.1f} "
              f"{r['p99_ms']:>8.1f} {r['refused']:>8} {r['app_cpu_ms']:>7.2f} {r['postgres_cpu_ms']:>6.2f} "
              f"{r['ratio']:>6.3f} {r['database_cap_ratio']:>6.3f}")  # fmt: skip
    for clients, rps in floors.items():
        print(
            f"the framework's floor (bench/floor_app.py), {clients} clients: {rps:.0f} requests/s, "
            f"{rps / baseline.tps:.2f}x pgbench; each request above at that count, of the floor: "
            + ", ".join(f"{r['kind']} {r['of_floor']:.2f}" for r in results if r["clients"] == clients)
        )
    print(f"pgbench tpcb-like, 8 clients, same server: {baseline}")
    print(f"after the runs: ledger {problems or 'consistent'}, "
          f"audit chains {'verify' if verified.ok else 'BROKEN'} ({verified.events} events)")  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "lifecycle.json").write_text(json.dumps({"results": results, "pgbench_tps": baseline.tps,
                                                     "floor_per_s": floors,
                                                     "pgbench_before_after": [baseline.before, baseline.after]},
                                                    indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
