"""Poison drill: one tenant's hostile data in place while normal traffic runs; nobody else may notice.

    .venv/bin/python -m bench.poison_drill [--seconds 60] [--banks 6] [--interval 2]

A fresh embedded PostgreSQL and the app (2 uvicorn workers, scheduler on, on the restricted database
role, webhook deliveries every `--interval` seconds with a 10 s deadline per attempt). In place:
- two **poisoned webhook URLs** (`https://☃.invalid/alerts`, `https://[::1/`), written straight into the
  database as by an attacker who got past an old version's checks;
- a **drip-feeding endpoint**: it reads the request, then answers one byte every 4 s;
- an **extreme pledge**: 20,000 t securing a loan of 0.01 CNY (coverage ~1.3·10^8), as a row from
  before the loan-term bounds.
Meanwhile the exchange posts a price every `--post-every` seconds, alternating below and above every
normal pledge's warning line, so each post raises or clears an alert per pledge and queues a webhook
delivery for every bank; reader threads (the good banks) list their pledges and alerts.

Measured: each good bank's delivery lateness (arrival at its endpoint − the alert's time, carried in
the payload), the price posts (status, latency, pledges revalued), the readers' latency, what the
hostile banks' deliveries recorded, how long the drip was held, the start-up revaluation, the extreme
pledge's stored coverage, and `registry check` afterwards. PASS when every good delivery arrived within
one interval plus a second, every post succeeded and every pledge was valued."""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from uuid import UUID

import httpx
from sqlalchemy import text

from bench.common import ROOT, create_database, free_port
from registry import check
from registry.access import service as access
from registry.calendar import EXCHANGE_TZ
from registry.clock import SystemClock
from registry.db import APP_ROLE, as_role, make_engine, start_embedded, unit_of_work
from registry.ledger import service as ledger
from registry.ledger.models import PartyKind
from registry.ledger.service import Selection
from registry.pledge import service as pledges
from registry.principal import SYSTEM, Actor, Principal, Role
from registry.valuation import prices

DATA = ROOT / "bench" / ".data-poison"
DEADLINE_S = 10.0
DRIP_EVERY_S = 4.0
BELOW, ABOVE = "60.00", "70.00"  # coverage 1.20 (under the 1.30 warning line) and 1.40


# --- the banks' ends ---------------------------------------------------------------------------------


@dataclass
class Arrivals:
    """What reached one good bank: (alert time from the payload, arrival time), epoch seconds."""

    seen: list[tuple[float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def good_endpoint(arrivals: Arrivals) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            arrived = time.time()
            at = datetime.fromisoformat(json.loads(body)["at"]).timestamp()
            with arrivals.lock:
                arrivals.seen.append((at, arrived))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/alerts"


@dataclass
class Drip:
    sock: socket.socket
    held_s: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/alerts"

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        """One byte every DRIP_EVERY_S; how long the registry stayed is until it hangs up (EOF)."""
        with conn:
            conn.recv(65536)
            began = time.monotonic()
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    break
                readable, _, _ = select.select([conn], [], [], DRIP_EVERY_S)
                if self.stop.is_set():
                    return  # the drill is over: not a measurement
                if readable:
                    try:
                        if not conn.recv(65536):
                            break  # the registry hung up
                    except OSError:
                        break
        self.held_s.append(time.monotonic() - began)


def drip_endpoint() -> Drip:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    drip = Drip(sock)
    threading.Thread(target=drip.serve, daemon=True).start()
    return drip


# --- the world ---------------------------------------------------------------------------------------


@dataclass
class World:
    op: dict[str, str]
    good: list[tuple[UUID, dict[str, str]]]  # (bank, key header)
    hostile: dict[str, UUID]  # what -> bank
    extreme: UUID
    pledges: int


def seed(url: str, banks: int, per_bank: int, good_urls: list[str], drip_url: str) -> World:
    now = SystemClock().now()
    today = now.astimezone(EXCHANGE_TZ).date()
    system = Actor(SYSTEM, now, request_id="drill")
    engine = make_engine(url, pool_size=1)
    with unit_of_work(engine) as s:
        exchange = ledger.create_party(
            s, system, name="Drill Exchange", kind=PartyKind.EXCHANGE, credit_code=None
        )
        op = access.create_key(s, party=exchange, role=Role.EXCHANGE, operator="drill-op", now=now).key
        prices.record_trades(s, system, [
            prices.Trade("CCER", today - timedelta(days=d), Decimal("66.00"), 10_000)
            for d in range(1, 30) if (today - timedelta(days=d)).weekday() < 5
        ])  # fmt: skip
        exchange_actor = Actor(Principal(party_id=exchange.id, role=Role.EXCHANGE, operator="drill-op"), now,
                               request_id="drill")  # fmt: skip
        names = [f"good-{i}" for i in range(banks)] + ["poisoned-idna", "poisoned-ipv6", "drip"]
        urls = [*good_urls, "https://☃.invalid/alerts", "https://[::1/", drip_url]
        ids: dict[str, UUID] = {}
        keys: dict[str, str] = {}
        count = 0
        extreme: UUID | None = None
        for n, (name, hook) in enumerate(zip(names, urls, strict=True)):
            bank = ledger.create_party(
                s, system, name=f"Drill Bank {name}", kind=PartyKind.BANK, credit_code=None
            )
            ids[name] = bank.id
            keys[name] = access.create_key(s, party=bank, role=Role.BANK, operator=None, now=now).key
            s.execute(text("INSERT INTO webhook (party_id, url, secret, updated_at) VALUES (:p, :u, :s, :t)"),
                      {"p": bank.id, "u": hook, "s": f"drill-secret-{n:04d}-xxxx", "t": now})  # fmt: skip
            holder = ledger.create_party(s, system, name=f"Drill Co {name}", kind=PartyKind.ENTERPRISE,
                                         credit_code=None)  # fmt: skip
            account = ledger.create_account(s, system, party_id=holder.id)
            ledger.issue(s, system, credit_type="CCER", project_code=f"DRILL-{n}", project_type="forestry",
                         vintage=2024, quantity=per_bank * 1000 + 20_000, account_id=account.id)  # fmt: skip
            bank_actor = Actor(Principal(party_id=bank.id, role=Role.BANK), now, request_id="drill")
            lots = [1000] * per_bank + ([20_000] if n == 0 else [])
            for k, units in enumerate(lots):
                made = pledges.register(
                    s, bank_actor, pledgor_account_id=account.id, borrower_party_id=holder.id,
                    loan=pledges.Loan(f"DR-{n}-{k}", Decimal("50000.00"), today, today + timedelta(days=300)),
                    collateral=Selection(credit_type="CCER", quantity=units),
                    terms=pledges.Terms(Decimal("0.90"), Decimal("1.30"), Decimal("1.10"), "last_close"),
                )  # fmt: skip
                holder_actor = Actor(Principal(party_id=holder.id, role=Role.HOLDER), now, request_id="drill")
                pledges.consent(
                    s, holder_actor, made.instruction.id
                )  # the joint application: the pledgor agrees
                pledges.confirm(s, exchange_actor, made.instruction.id)
                count += 1
                if units == 20_000:
                    extreme = made.pledge.id
        assert extreme is not None
        # A loan the door refuses now, as a row from before the bounds: 20,000 t securing one cent.
        s.execute(text("UPDATE pledge SET principal = 0.01, outstanding_principal = 0.01 WHERE id = :p"),
                  {"p": extreme})  # fmt: skip
    engine.dispose()
    auth = {name: {"Authorization": f"Bearer {k}"} for name, k in keys.items()}
    return World(
        {"Authorization": f"Bearer {op}"},
        [(ids[f"good-{i}"], auth[f"good-{i}"]) for i in range(banks)],
        {name: ids[name] for name in ("poisoned-idna", "poisoned-ipv6", "drip")},
        extreme,
        count,
    )


def start_app(url: str, port: int, interval: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REGISTRY_APP_DATABASE_URL": as_role(url, APP_ROLE),
        "REGISTRY_SCHEDULER_ENABLED": "true",
        "REGISTRY_DELIVER_WEBHOOKS_EVERY_SECONDS": str(interval),
        "REGISTRY_WEBHOOK_TIMEOUT_SECONDS": str(DEADLINE_S),
        "REGISTRY_WEBHOOK_ALLOW_PRIVATE": "true",  # the good banks' endpoints are on loopback here
        "REGISTRY_LOG_LEVEL": "WARNING",
        "REGISTRY_DB_POOL_SIZE": "10",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port", str(port),
         "--workers", "2", "--no-access-log", "--log-level", "critical"],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the app did not start")


# --- traffic -----------------------------------------------------------------------------------------


@dataclass
class Traffic:
    posts: list[tuple[int, float, int]] = field(default_factory=list)  # status, seconds, revalued
    reads: list[float] = field(default_factory=list)
    read_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def poster(base: str, world: World, until: float, every: float, traffic: Traffic) -> None:
    below = True
    with httpx.Client(base_url=base, timeout=60) as http:
        while time.monotonic() < until:
            today = datetime.now(EXCHANGE_TZ).date()
            began = time.perf_counter()
            r = http.post("/v1/prices/trades", headers=world.op, json=[
                {"credit_type": "CCER", "trade_date": today.isoformat(), "price": BELOW if below else ABOVE,
                 "volume": 1000}])  # fmt: skip
            took = time.perf_counter() - began
            revalued = r.json().get("revalued", -1) if r.status_code == 201 else -1
            with traffic.lock:
                traffic.posts.append((r.status_code, took, revalued))
            below = not below
            time.sleep(max(0.0, every - took))


def reader(base: str, key: dict[str, str], until: float, traffic: Traffic) -> None:
    with httpx.Client(base_url=base, timeout=60) as http:
        while time.monotonic() < until:
            for path in ("/v1/pledges?limit=50", "/v1/alerts?status=open&limit=50"):
                began = time.perf_counter()
                r = http.get(path, headers=key)
                took = time.perf_counter() - began
                with traffic.lock:
                    traffic.reads.append(took)
                    traffic.read_errors += r.status_code != 200
            time.sleep(0.05)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--banks", type=int, default=6, help="good banks")
    parser.add_argument("--pledges-per-bank", type=int, default=5)
    parser.add_argument("--interval", type=int, default=2, help="REGISTRY_DELIVER_WEBHOOKS_EVERY_SECONDS")
    parser.add_argument("--post-every", type=float, default=3.0, help="seconds between price posts")
    parser.add_argument("--readers", type=int, default=3)
    args = parser.parse_args()
    if DATA.exists():
        shutil.rmtree(DATA)
    server_url = start_embedded(DATA)
    url = create_database(server_url, "registry_poison")

    arrivals = [Arrivals() for _ in range(args.banks)]
    endpoints = [good_endpoint(a) for a in arrivals]
    drip = drip_endpoint()
    world = seed(url, args.banks, args.pledges_per_bank, [u for _, u in endpoints], drip.url)
    port = free_port()
    app = start_app(url, port, args.interval)
    base = f"http://127.0.0.1:{port}"
    print(f"{args.banks} good banks + 2 poisoned URLs + 1 drip endpoint; {world.pledges} active pledges "
          f"(one of 20,000 t for 0.01 CNY); deliveries every {args.interval} s, {DEADLINE_S:.0f} s deadline",
          flush=True)  # fmt: skip
    traffic = Traffic()
    began = time.monotonic()
    until = began + args.seconds
    threads = [threading.Thread(target=poster, args=(base, world, until, args.post_every, traffic))]
    threads += [threading.Thread(target=reader, args=(base, world.good[i % len(world.good)][1], until, traffic))
                for i in range(args.readers)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(args.interval + 2)  # the last post's deliveries
    ended_at = time.time()
    os.killpg(app.pid, signal.SIGTERM)
    try:
        app.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(app.pid, signal.SIGKILL)
    drip.stop.set()
    for server, _ in endpoints:
        server.shutdown()

    engine = make_engine(url, pool_size=2)
    with engine.connect() as conn:
        good_ids = [b for b, _ in world.good]
        by_status: dict[str, int] = dict(conn.execute(text(
            "SELECT status, count(*) FROM webhook_delivery WHERE party_id = ANY(:b) GROUP BY status"),
            {"b": good_ids}).all())  # fmt: skip
        stuck = conn.execute(text(
            "SELECT count(*) FROM webhook_delivery WHERE party_id = ANY(:b) AND status <> 'delivered' "
            "AND created_at < to_timestamp(:t)"),
            {"b": good_ids, "t": ended_at - args.interval - 1}).scalar_one()  # fmt: skip
        hostile_sql = text(
            "SELECT count(*) AS n, max(attempts) AS attempts, "
            "array_remove(array_agg(DISTINCT last_error), NULL) AS errors "
            "FROM webhook_delivery WHERE party_id = :p"
        )
        hostile = {what: conn.execute(hostile_sql, {"p": bank}).one() for what, bank in world.hostile.items()}
        revalue_runs = conn.execute(text(
            "SELECT count(*) FROM job_run WHERE job = 'revalue' AND finished_at IS NOT NULL")).scalar_one()  # fmt: skip
        extreme = conn.execute(text(
            "SELECT coverage_ratio, level, error, count(*) OVER () AS n FROM valuation WHERE pledge_id = :p "
            "ORDER BY id DESC LIMIT 1"), {"p": world.extreme}).one()  # fmt: skip
        unvalued = conn.execute(text("SELECT count(*) FROM valuation WHERE error IS NOT NULL")).scalar_one()
    report = check.run(engine)
    engine.dispose()

    lateness = [arrived - at for a in arrivals for at, arrived in a.seen]
    per_bank_max = [max((arr - at for at, arr in a.seen), default=float("nan")) for a in arrivals]
    posts_ok = [p for p in traffic.posts if p[0] == 201]
    budget = args.interval + 1.0
    print(f"\nran {time.monotonic() - began - args.interval - 2:.0f} s")
    print(f"price posts: {len(traffic.posts)} ({len(posts_ok)} × 201), latency p50 "
          f"{pct([p[1] for p in traffic.posts], 0.5):.3f} s, max {max(p[1] for p in traffic.posts):.3f} s, "
          f"pledges revalued per post {sorted({p[2] for p in traffic.posts})}")  # fmt: skip
    print(f"good banks' deliveries: {len(lateness)} arrived ({by_status}), lateness p50 {pct(lateness, 0.5):.3f} s, "
          f"p99 {pct(lateness, 0.99):.3f} s, max {max(lateness, default=float('nan')):.3f} s "
          f"(budget {budget:.0f} s); per bank max {[round(x, 2) for x in per_bank_max]}; "
          f"not delivered within budget: {stuck}")  # fmt: skip
    for what, row in hostile.items():
        print(f"{what}: {row.n} deliveries, attempts up to {row.attempts}, recorded errors {row.errors}")
    print(
        f"drip endpoint held {len(drip.held_s)} attempt(s), each cut after "
        f"{min(drip.held_s, default=0):.1f}–{max(drip.held_s, default=0):.1f} s (deadline {DEADLINE_S:.0f} s)"
    )
    print(
        f"readers: {len(traffic.reads)} requests, p50 {pct(traffic.reads, 0.5) * 1000:.0f} ms, "
        f"p99 {pct(traffic.reads, 0.99) * 1000:.0f} ms, errors {traffic.read_errors}"
    )
    print(
        f"revaluation: start-up run finished {revalue_runs}×; extreme pledge coverage {extreme.coverage_ratio} "
        f"({extreme.level}, error {extreme.error}, {extreme.n} valuations); pledges unvalued: {unvalued}"
    )
    print(
        f"registry check: {'ok' if report.ok else 'FAILED'} ({report.events:,} events in {report.chains} chains)"
    )
    ok = (
        report.ok and len(posts_ok) == len(traffic.posts) > 0 and lateness and max(lateness) <= budget
        and stuck == 0 and revalue_runs >= 1 and extreme.error is None and unvalued == 0
        and all(p[2] == world.pledges for p in posts_ok) and not traffic.read_errors
        and all(h <= DEADLINE_S + 1 for h in drip.held_s)
    )  # fmt: skip
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
