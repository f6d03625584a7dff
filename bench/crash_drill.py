"""Crash drill: mixed traffic from many clients while the app and PostgreSQL are killed with SIGKILL.

    .venv/bin/python -m bench.crash_drill [--clients 12] [--seconds 90] [--faults 8]

A fresh embedded PostgreSQL and the app (2 uvicorn workers, on the restricted database role) take
registrations, confirmations, releases, transfers and price posts from `--clients` threads. Every
request carries an Idempotency-Key; a client that gets no answer, a connection error or a 5xx sends the
same request with the same key again until it gets a real answer. Meanwhile the drill kills the whole
app (every process, kill -9) or the PostgreSQL postmaster (kill -9) at random moments, `--faults` times,
and restarts it. When the clients have finished their last requests:
- `registry check` must pass (units, blocks, pledges, certificates, holdings = replay of the trail, chains);
- every success a client saw must be in the database (pledges, confirmations, transfers' effect on each
  account's units: lost must be 0);
- no instruction applied twice: each confirmed instruction's applied quantity equals the units its
  freeze/unfreeze events moved.
Printed: requests, retries, successes by kind, faults injected, and the checks' results."""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text

from bench.common import ROOT, free_port
from registry import check
from registry.access import service as access
from registry.clock import SystemClock
from registry.db import APP_ROLE, as_role, make_engine, migrate, unit_of_work
from registry.ledger import service as ledger
from registry.ledger.models import PartyKind
from registry.principal import SYSTEM, Actor, Role
from registry.valuation import prices

DATA = ROOT / "bench" / ".data-crash"
START_UNITS = 100_000


@dataclass
class World:
    op: dict[str, str]
    banks: list[dict[str, str]]
    accounts: list[str]  # one enterprise account per client
    parties: list[str]
    holders: list[dict[str, str]]  # each client's enterprise's own key: the pledgor consents with it


@dataclass
class Tally:
    requests: int = 0
    retries: int = 0
    successes: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    pledges: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    transfers: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def seed(url: str, clients: int) -> World:
    actor = Actor(SYSTEM, SystemClock().now(), request_id="drill")
    with unit_of_work(make_engine(url, pool_size=1)) as s:
        exchange = ledger.create_party(
            s, actor, name="Drill Exchange", kind=PartyKind.EXCHANGE, credit_code=None
        )
        banks = [
            ledger.create_party(s, actor, name=f"Drill Bank {b}", kind=PartyKind.BANK, credit_code=None)
            for b in range(2)
        ]
        for bank in banks:
            ledger.create_account(s, actor, party_id=bank.id)
        parties, accounts, enterprises = [], [], []
        for c in range(clients):
            party = ledger.create_party(
                s, actor, name=f"Drill Co {c}", kind=PartyKind.ENTERPRISE, credit_code=None
            )
            enterprises.append(party)
            account = ledger.create_account(s, actor, party_id=party.id)
            ledger.issue(
                s,
                actor,
                credit_type="CCER",
                project_code=f"DRILL-{c}",
                project_type="forestry",
                vintage=2024,
                quantity=START_UNITS,
                account_id=account.id,
            )
            parties.append(str(party.id))
            accounts.append(str(account.id))
        today = actor.at.date()
        prices.record_trades(
            s,
            actor,
            [
                prices.Trade("CCER", today - timedelta(days=d), Decimal("66.00"), 10_000)
                for d in range(1, 30)
                if (today - timedelta(days=d)).weekday() < 5
            ],
        )
        op = access.create_key(s, party=exchange, role=Role.EXCHANGE, operator="drill-op", now=actor.at).key
        bank_keys = [
            access.create_key(s, party=b, role=Role.BANK, operator=None, now=actor.at).key for b in banks
        ]
        holder_keys = [
            access.create_key(s, party=party, role=Role.HOLDER, operator=None, now=actor.at).key
            for party in enterprises
        ]
    return World(
        {"Authorization": f"Bearer {op}"},
        [{"Authorization": f"Bearer {k}"} for k in bank_keys],
        accounts,
        parties,
        [{"Authorization": f"Bearer {k}"} for k in holder_keys],
    )


# --- the app and the database, and killing them ------------------------------------------------------


class App:
    def __init__(self, url: str, port: int) -> None:
        self.url, self.port = url, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": self.url,
            "REGISTRY_APP_DATABASE_URL": as_role(self.url, APP_ROLE),
            "REGISTRY_SCHEDULER_ENABLED": "false",
            "REGISTRY_LOG_LEVEL": "WARNING",
            "REGISTRY_DB_POOL_SIZE": "10",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.app:create_app",
                "--factory",
                "--port",
                str(self.port),
                "--workers",
                "2",
                "--no-access-log",
                "--log-level",
                "critical",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the app did not come back")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)  # the supervisor and every worker, no goodbye
        self.proc.wait()


class Database:
    def __init__(self) -> None:
        import pgserver

        self.server = pgserver.get_server(DATA, cleanup_mode="stop")  # type: ignore[attr-defined]

    def url(self) -> str:
        return "postgresql+psycopg://" + self.server.get_uri().removeprefix("postgresql://")

    def kill(self) -> None:
        self.pid = int((DATA / "postmaster.pid").read_text().split()[0])
        os.kill(self.pid, signal.SIGKILL)  # the postmaster; its backends notice and go

    def restart(self) -> None:
        import psutil

        # In a container nobody may reap the killed postmaster: a zombie still "holds" its lock file, and
        # PostgreSQL would refuse to start. Once its backends are gone, the stale lock file goes too.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                gone = psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                gone = True
            backends = [
                p for p in psutil.process_iter(["cmdline"]) if str(DATA) in " ".join(p.info["cmdline"] or [])
            ]
            if gone and not [p for p in backends if p.status() != psutil.STATUS_ZOMBIE]:
                break
            time.sleep(0.1)
        (DATA / "postmaster.pid").unlink(missing_ok=True)
        for lock in DATA.glob(".s.PGSQL.*.lock"):  # the socket's lock file, stale the same way
            lock.unlink(missing_ok=True)
        for attempt in range(30):
            try:
                self.server.ensure_postgres_running()  # crash recovery replays the WAL
                return
            except Exception:
                time.sleep(0.5 * (attempt + 1))
        raise RuntimeError("PostgreSQL did not come back")


# --- clients -----------------------------------------------------------------------------------------


def send(
    http: httpx.Client, tally: Tally, method: str, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    """One request, retried with the same Idempotency-Key until it gets a real answer."""
    key = {"Idempotency-Key": str(uuid.uuid4())}
    delay = 0.1
    while True:
        with tally.lock:
            tally.requests += 1
        try:
            response = http.request(method, path, json=body, headers={**headers, **key}, timeout=30)
            if response.status_code < 500:
                return response
        except httpx.TransportError:
            pass
        with tally.lock:
            tally.retries += 1
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def client(n: int, world: World, base: str, until: float, tally: Tally, seed_: int) -> None:
    rng = random.Random(seed_)
    bank = world.banks[n % 2]
    mine = world.accounts[n]
    pending: list[tuple[str, str]] = []  # (pledge, instruction) waiting for the exchange
    active: list[str] = []
    with httpx.Client(base_url=base) as http:
        while time.monotonic() < until:
            roll = rng.random()
            if roll < 0.3:
                other = rng.choice([a for a in world.accounts if a != mine])
                quantity = rng.randint(1, 50)
                r = send(
                    http,
                    tally,
                    "POST",
                    "/v1/transfers",
                    {
                        "from_account_id": mine,
                        "to_account_id": other,
                        "credit_type": "CCER",
                        "quantity": quantity,
                    },
                    world.op,
                )
                if r.status_code == 201:
                    with tally.lock:
                        tally.transfers.append((mine, other, quantity))
                kind = "transfer"
            elif roll < 0.55:
                body = {
                    "pledgor_account_id": mine,
                    "borrower_party_id": world.parties[n],
                    "loan": {
                        "contract_no": f"D-{uuid.uuid4().hex[:8]}",
                        "principal": "5000.00",
                        "start_date": "2026-03-02",
                        "maturity_date": "2027-03-01",
                    },
                    "collateral": {"credit_type": "CCER", "quantity": rng.randint(150, 400)},
                    "terms": {"max_pledge_rate": "0.80", "warning_ratio": "1.30", "disposal_ratio": "1.10"},
                }
                r = send(http, tally, "POST", "/v1/pledges", body, bank)
                if r.status_code == 201:
                    pledge, instruction = r.json()["id"], r.json()["instructions"][0]["id"]
                    with tally.lock:
                        tally.pledges.append(pledge)
                    # The joint application: the pledgor agrees (its units are held), then the exchange decides.
                    agreed = send(http, tally, "POST", f"/v1/instructions/{instruction}/consent", None,
                                  world.holders[n])  # fmt: skip
                    with tally.lock:
                        (tally.successes if agreed.status_code < 300 else tally.refusals)["consent"] += 1
                    if agreed.status_code == 200:
                        pending.append((pledge, instruction))
                kind = "register"
            elif roll < 0.8 and pending:
                pledge, instruction = pending.pop(0)
                r = send(http, tally, "POST", f"/v1/instructions/{instruction}/confirm", None, world.op)
                if r.status_code == 200:
                    with tally.lock:
                        tally.confirmed.append(instruction)
                    if r.json()["type"] == "register":
                        active.append(pledge)
                kind = "confirm"
            elif roll < 0.9 and active:
                pledge = active.pop(0)
                r = send(http, tally, "POST", f"/v1/pledges/{pledge}/instructions", {"type": "release"}, bank)
                if r.status_code == 201:
                    pending.append((pledge, r.json()["id"]))
                kind = "release"
            else:
                day = (datetime.now(UTC).date() - timedelta(days=rng.randint(1, 20))).isoformat()
                price = f"{rng.uniform(60, 70):.2f}"
                r = send(
                    http,
                    tally,
                    "POST",
                    "/v1/prices/trades",
                    [{"credit_type": "CCER", "trade_date": day, "price": price, "volume": 1000}],
                    world.op,
                )
                kind = "price"
            with tally.lock:
                (tally.successes if r.status_code < 300 else tally.refusals)[kind] += 1


# --- the drill ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--seconds", type=int, default=90)
    parser.add_argument("--faults", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if DATA.exists():
        import shutil

        shutil.rmtree(DATA)
    db = Database()
    url = db.url()
    migrate(url)
    world = seed(url, args.clients)
    app = App(url, free_port())
    app.start()
    tally, faults = Tally(), Counter[str]()
    rng = random.Random(args.seed)
    began = time.monotonic()
    until = began + args.seconds
    threads = [
        threading.Thread(
            target=client, args=(n, world, f"http://127.0.0.1:{app.port}", until, tally, args.seed * 100 + n)
        )
        for n in range(args.clients)
    ]
    for t in threads:
        t.start()
    gap = args.seconds / (args.faults + 1)
    for k in range(args.faults):
        time.sleep(rng.uniform(0.5, 1.5) * gap * 0.8)
        if k % 2 == 0:
            what = "app killed"
            app.kill()
            faults[what] += 1
            time.sleep(rng.uniform(0.2, 1.0))
            app.start()
        else:
            what = "postgres killed"
            db.kill()
            faults[what] += 1
            time.sleep(rng.uniform(0.5, 1.5))
            db.restart()
        print(f"  t={time.monotonic() - began:5.1f} s  {what}, back up", flush=True)
    for t in threads:
        t.join()
    app.kill()
    elapsed = time.monotonic() - began

    engine = make_engine(url, pool_size=2)
    report = check.run(engine)
    with engine.connect() as conn:
        found_pledges = set(conn.execute(text("SELECT id::text FROM pledge")).scalars())
        statuses = dict(conn.execute(text("SELECT id::text, status FROM instruction")).all())  # type: ignore[arg-type]
        units = dict(
            conn.execute(text("SELECT account_id::text, sum(quantity) FROM holding GROUP BY 1")).all()
        )  # type: ignore[arg-type]
        twice = (
            conn.execute(
                text("""
            SELECT i.id FROM instruction i
              LEFT JOIN (SELECT instruction_id, sum(serial_end - serial_start + 1) AS moved FROM audit_event
                          WHERE kind IN ('freeze', 'unfreeze') AND from_account_id = to_account_id
                          GROUP BY instruction_id) e ON e.instruction_id = i.id
             WHERE i.status = 'confirmed' AND i.type IN ('register', 'top_up', 'release')
               AND coalesce(e.moved, 0) <> i.applied_quantity""")
            )
            .scalars()
            .all()
        )
    engine.dispose()
    expected = Counter({a: START_UNITS for a in world.accounts})
    for source, target, quantity in tally.transfers:
        expected[source] -= quantity
        expected[target] += quantity
    lost = {
        "pledges": sum(1 for p in tally.pledges if p not in found_pledges),
        "confirmations": sum(1 for i in tally.confirmed if statuses.get(i) != "confirmed"),
        "accounts whose units differ": sum(1 for a in world.accounts if units.get(a) != expected[a]),
    }
    print(
        f"\n{args.clients} clients, {elapsed:.0f} s: {tally.requests:,} requests ({tally.retries:,} retries), "
        f"successes {dict(tally.successes)}, refusals {dict(tally.refusals)}"
    )
    print(f"faults injected: {dict(faults)}")
    print(
        f"registry check: {'ok' if report.ok else 'FAILED'} ({report.events:,} events in {report.chains} chains)"
    )
    for problem in report.problems:
        print(f"  FAIL {problem}")
    print(f"instructions applied twice: {len(twice)}; lost: {lost}")
    ok = report.ok and not twice and not any(lost.values())
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
