"""Settlement in bulk: a day's settled trades as one batch, through the API, beside pgbench.

    .venv/bin/python -m bench.settlement_bench [--transfers 10000] [--accounts 1000] [--batches 3]

Each batch is one `POST /v1/transfers/batch` of `--transfers` lines (1 to 10 units each, between random
pairs of `--accounts` accounts that each hold one issuance), timed from the request to the answer, with
the CPU it cost the app's process and PostgreSQL's (steadier than the time on a shared machine): the JSON
in and out, the locks, the blocks, the audit trail and the commit with its deferred checks. The first
batch moves units out of whole issuances; later ones play on the fragments the earlier ones left, as
later settlement days do. After the run: the ledger checks and every chain verified. Results go to
bench/results/settlement.json."""

from __future__ import annotations

import argparse
import json
import random
import time

import httpx

from bench.common import (
    ROOT,
    Baseline,
    check_after,
    cpu_seconds,
    create_database,
    free_port,
    fresh_server,
    funded_accounts,
    pgbench_tps,
    postgres_cpu,
    start_app,
)
from registry.access import service as access
from registry.clock import SystemClock
from registry.db import make_engine, unit_of_work
from registry.ledger import service as ledger
from registry.ledger.models import PartyKind
from registry.principal import SYSTEM, Actor, Role


def setup(url: str, accounts: int) -> tuple[str, list[str]]:
    engine = make_engine(url, pool_size=1)
    actor = Actor(SYSTEM, SystemClock().now())
    with unit_of_work(engine) as s:
        exchange = ledger.create_party(
            s, actor, name="Bench Exchange", kind=PartyKind.EXCHANGE, credit_code=None
        )
        key = access.create_key(s, party=exchange, role=Role.EXCHANGE, operator="bench", now=actor.at).key
        owner = ledger.create_party(
            s, actor, name="Bench Holders", kind=PartyKind.ENTERPRISE, credit_code=None
        )
        ids = [str(a) for a in funded_accounts(s, actor, owner.id, accounts, quantity=1_000_000,
                                                project_code="BENCH", project_type="forestry")]  # fmt: skip
    engine.dispose()
    return key, ids


def batch(ids: list[str], transfers: int, rng: random.Random) -> dict[str, object]:
    lines = []
    for n in range(transfers):
        a, b = rng.sample(ids, 2)
        lines.append({"from_account_id": a, "to_account_id": b, "credit_type": "CCER",
                      "quantity": rng.randint(1, 10), "ref": f"T-{n}"})  # fmt: skip
    return {"transfers": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--pgbench-seconds", type=int, default=20)
    args = parser.parse_args()

    server = fresh_server()
    url = create_database(server, "registry_bench")
    key, ids = setup(url, args.accounts)
    before = pgbench_tps(server, clients=8, seconds=args.pgbench_seconds)  # and after: Baseline
    port = free_port()
    app = start_app(url, workers=1, port=port)
    rng = random.Random(7)
    runs = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600,
                          headers={"Authorization": f"Bearer {key}"}) as http:  # fmt: skip
            for n in range(args.batches):
                body = batch(ids, args.transfers, rng)
                app_cpu, db_cpu = cpu_seconds(app.pid), postgres_cpu()
                began = time.perf_counter()
                answer = http.post("/v1/transfers/batch", json=body)
                seconds = time.perf_counter() - began
                app_cpu, db_cpu = cpu_seconds(app.pid) - app_cpu, postgres_cpu() - db_cpu
                assert answer.status_code == 201, answer.text[:2000]
                runs.append({"batch": n + 1, "seconds": seconds, "transfers_per_s": args.transfers / seconds,
                             "app_cpu_s": app_cpu, "postgres_cpu_s": db_cpu})  # fmt: skip
    finally:
        app.terminate()
        app.wait(timeout=30)
    time.sleep(1)
    baseline = Baseline(before, pgbench_tps(server, clients=8, seconds=args.pgbench_seconds))
    pgbench = baseline.tps
    problems, verified = check_after(url)

    print(
        f"\nsettlement_bench: {args.transfers} transfers a batch among {args.accounts} accounts, one app worker"
    )
    print(f"{'batch':>6} {'seconds':>9} {'transfers/s':>12} {'app CPU s':>10} {'PostgreSQL CPU s':>17}")
    for r in runs:
        print(f"{r['batch']:>6} {r['seconds']:>9.2f} {r['transfers_per_s']:>12.0f} {r['app_cpu_s']:>10.2f} "
              f"{r['postgres_cpu_s']:>17.2f}")  # fmt: skip
    best = max(r["transfers_per_s"] for r in runs)
    print(f"pgbench tpcb-like, 8 clients, same server: {baseline} (ratio best batch rate / pgbench: "
          f"{best / pgbench:.2f})")  # fmt: skip
    print(f"after the run: ledger {problems or 'consistent'}, audit chains "
          f"{'verify' if verified.ok else 'BROKEN'} ({verified.events} events)")  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "settlement.json").write_text(
        json.dumps(
            {"runs": runs, "pgbench_tps": pgbench, "pgbench_before_after": [baseline.before, baseline.after]},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
