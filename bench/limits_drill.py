"""The limits drill: what one anonymous client can make a running registry spend (issue 13).

    .venv/bin/python -m bench.limits_drill [--body-mb 200] [--bodies 4] [--guesses 40]

A fresh embedded PostgreSQL and the app in a process of its own (`uvicorn --workers 1`, real Argon2id
at 64 MiB), then, while the server's resident memory is sampled every 10 ms:

1. `--bodies` concurrent unauthenticated POSTs of `--body-mb` MB each to /v1/pledges (chunked, so nothing
   announces the size): their answers, how long each took, and the server's memory growth;
2. `--guesses` concurrent wrong passwords for one console user from one client, while a bank reads
   `GET /v1/accounts` every 50 ms: the answers, the memory growth and the bank's slowest read;
3. `--guesses` concurrent wrong verification codes from one client: the answers.

It uses only what every version of the registry has, so the same command measures the code before a
change (run it from a checkout of that commit) and after."""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx

from bench.common import create_database, free_port, fresh_server, start_app
from registry.access import service as access
from registry.db import make_engine, unit_of_work
from registry.ledger import service as ledger
from registry.ledger.models import PartyKind
from registry.principal import SYSTEM, Actor, Role
from registry.users import service as users

MB = 1 << 20
PASSWORD = "correct horse battery staple"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@contextmanager
def sampled(pid: int) -> Iterator[Callable[[], tuple[float, float]]]:
    """(memory before, peak during) of the server process, in MB."""
    before, peak, done = rss_mb(pid), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.01)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: (before, peak[0])
    finally:
        done.set()
        thread.join()


def seed(url: str) -> str:
    """A bank key and one console user of the exchange; returns the bank's key."""
    engine = make_engine(url, pool_size=1)
    actor = Actor(SYSTEM, datetime.now(UTC), request_id="drill")
    with unit_of_work(engine) as s:
        bank = ledger.create_party(s, actor, name="Drill Bank", kind=PartyKind.BANK, credit_code=None)
        exchange = ledger.create_party(
            s, actor, name="Drill Exchange", kind=PartyKind.EXCHANGE, credit_code=None
        )
        key = access.create_key(s, party=bank, role=Role.BANK, operator=None, now=actor.at).key
        users.create_user(s, username="op-drill", display_name="Op", party=exchange, role=Role.EXCHANGE,
                          password=PASSWORD, now=actor.at)  # fmt: skip
    engine.dispose()
    return key


def bodies(base: str, pid: int, count: int, size_mb: int) -> None:
    chunk = b"x" * MB

    def post(_: int) -> tuple[int, float]:
        began = time.perf_counter()
        try:
            answer = httpx.post(f"{base}/v1/pledges", content=(chunk for _ in range(size_mb)), timeout=300,
                                headers={"Content-Type": "application/json"})  # fmt: skip
            status = answer.status_code
        except httpx.HTTPError:
            status = 0  # the server closed the connection
        return status, time.perf_counter() - began

    with sampled(pid) as memory, ThreadPoolExecutor(count) as pool:
        results = list(pool.map(post, range(count)))
    before, peak = memory()
    time.sleep(1)
    print(f"{count} x {size_mb} MB unauthenticated bodies: answers {dict(Counter(s for s, _ in results))}, "
          f"each {max(t for _, t in results):.1f} s at most; server memory {before:.0f} MB -> peak "
          f"{peak:.0f} MB (+{peak - before:.0f} MB), {rss_mb(pid):.0f} MB after")  # fmt: skip


def passwords(base: str, pid: int, guesses: int, bank_key: str) -> None:
    http = httpx.Client(timeout=120)
    page = http.get(f"{base}/console/login")
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    form = {"username": "op-drill", "password": "wrong password", "csrf": token}
    reads: list[float] = []
    stop = threading.Event()

    def bank_reads() -> None:
        with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {bank_key}"}) as bank:
            while not stop.is_set():
                began = time.perf_counter()
                bank.get(f"{base}/v1/accounts", params={"limit": 1})
                reads.append(time.perf_counter() - began)
                time.sleep(0.05)

    reader = threading.Thread(target=bank_reads, daemon=True)
    reader.start()
    time.sleep(0.5)
    quiet = max(reads) if reads else 0.0
    with sampled(pid) as memory, ThreadPoolExecutor(guesses) as pool:
        statuses = list(pool.map(lambda _: http.post(f"{base}/console/login", data=form).status_code,
                                 range(guesses)))  # fmt: skip
    stop.set()
    reader.join()
    before, peak = memory()
    print(f"{guesses} concurrent wrong passwords: answers {dict(Counter(statuses))}; server memory "
          f"{before:.0f} MB -> peak {peak:.0f} MB (+{peak - before:.0f} MB); a bank's read: {quiet:.3f} s "
          f"before, {max(reads):.3f} s at worst during")  # fmt: skip


def codes(base: str, guesses: int) -> None:
    with httpx.Client(timeout=60) as http, ThreadPoolExecutor(guesses) as pool:
        statuses = list(pool.map(lambda _: http.get(f"{base}/v1/certificates/ZY-2026-000001-01/verify",
                                                    params={"code": "AAAAAAAAAAAA"}).status_code,
                                 range(guesses)))  # fmt: skip
    print(
        f"{guesses} concurrent wrong verification codes: answers {dict(Counter(statuses))} "
        f"(404: evaluated, 429: refused unevaluated)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body-mb", type=int, default=200)
    parser.add_argument("--bodies", type=int, default=4)
    parser.add_argument("--guesses", type=int, default=40)
    args = parser.parse_args()
    url = create_database(fresh_server(), "drill")
    bank_key = seed(url)
    port = free_port()
    app = start_app(url, workers=1, port=port)
    base = f"http://127.0.0.1:{port}"
    try:
        time.sleep(2)  # start-up jobs (the first revaluation) settle
        bodies(base, app.pid, args.bodies, args.body_mb)
        passwords(base, app.pid, args.guesses, bank_key)
        codes(base, args.guesses)
    finally:
        app.terminate()
        app.wait(timeout=30)


if __name__ == "__main__":
    main()
