"""The framework's floor beside pgbench, on the same PostgreSQL in the same run.

    .venv/bin/python -m bench.floor_bench [--seconds 20] [--clients 8,32] [--workers 2]

The floor is bench/floor_app.py: FastAPI, a pydantic body, one `UPDATE … RETURNING` through psycopg, the
registry's uvicorn settings (httptools, uvloop, the same worker count). Its requests per second against
pgbench tpcb-like say how much of the machine a request through this stack can use at best; the other
benchmarks' figures are read against both. Results go to bench/results/floor.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

from bench.common import (
    ROOT,
    Baseline,
    create_database,
    free_port,
    fresh_server,
    load_arguments,
    pgbench_tps,
    require_wrk,
    wrk_run,
)

ACCOUNTS = 64

LUA = """
local n = %d
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, "/move", nil, string.format('{"account": %%d, "quantity": 1}', math.random(n)))
end
"""


def start_floor(database_url: str, *, workers: int, port: int) -> subprocess.Popen[bytes]:
    libpq = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("CREATE TABLE floor_account (id int PRIMARY KEY, balance bigint NOT NULL)")
        conn.execute("INSERT INTO floor_account SELECT g, 0 FROM generate_series(1, %s) g", (ACCOUNTS,))
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--no-access-log", "--log-level", "warning",
         "--http", "httptools", "--loop", "uvloop"],
        cwd=ROOT, env={**os.environ, "FLOOR_DATABASE_URL": libpq},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/move", json={"account": 1, "quantity": 1}, timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the floor app did not start")


def measure(server: str, *, workers: int, clients: list[int], seconds: int) -> dict[str, Any]:
    """The floor's figures at each client count, and pgbench's, on `server`, one after the other."""
    wrk = require_wrk()
    url = create_database(server, "floor", migrated=False)
    before = pgbench_tps(server, clients=8, seconds=seconds)  # and after: Baseline
    port = free_port()
    app = start_floor(url, workers=workers, port=port)
    try:
        runs = [
            {"clients": c, **wrk_run(wrk, f"http://127.0.0.1:{port}", LUA % ACCOUNTS, c, seconds)}
            for c in clients
        ]
    finally:
        app.terminate()
        app.wait(timeout=30)
    time.sleep(1)
    baseline = Baseline(before, pgbench_tps(server, clients=8, seconds=seconds))
    for run in runs:
        run.pop("output", None)
    return {"runs": runs, "pgbench_tps": baseline.tps, "pgbench_before_after": [baseline.before, baseline.after],
            "workers": workers}  # fmt: skip


def main() -> None:
    args = load_arguments(__doc__.splitlines()[0], population="unused", default=0)
    clients = [int(c) for c in args.clients.split(",")]
    figures = measure(fresh_server(), workers=args.workers, clients=clients, seconds=args.seconds)
    print(f"\nfloor_bench: {args.workers} app worker(s), {args.seconds}s per run")
    print(f"{'clients':>8} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for r in figures["runs"]:
        print(
            f"{r['clients']:>8} {r['rps']:>11.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['non_2xx']:>8}"
        )
    best = max(r["rps"] for r in figures["runs"])
    before, after = figures["pgbench_before_after"]
    print(f"pgbench tpcb-like, 8 clients, same server: {Baseline(before, after)}")
    print(f"ratio floor requests/s / pgbench TPS: {best / figures['pgbench_tps']:.2f}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "floor.json").write_text(json.dumps({**figures, "ratio": best / figures["pgbench_tps"]}, indent=2))


if __name__ == "__main__":
    main()
