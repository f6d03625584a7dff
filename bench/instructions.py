"""Instructions a transfer costs the database and the app, counted by callgrind, beside a pgbench tpcb-like
transaction counted the same way, and their ratio: figures that do not move with the machine's load.

    .venv/bin/python -m bench.instructions [--transfers 200] [--pledges]

(valgrind: `apt-get install valgrind`.) A fresh embedded PostgreSQL gets the ledger bench's 64 account
pairs, a past (1,000 more accounts and 20,000 settled transfers among them, analyzed: the plans a ledger in
service gets) and pgbench's tables (scale 10, analyzed by pgbench); the server is stopped, and a single-user
backend (`postgres --single`) on a copy of its data runs, under callgrind, N and then 3N of one kind of
transaction as plain SQL: the difference over 2N is one transaction, without the backend's start. A transfer
is what `POST /v1/transfers` sends (BEGIN, the idempotency claim, `registry_move`, the stored response,
COMMIT); a tpcb-like transaction is pgbench's five statements. A single-user backend has no prepared
statements, so both counts include parsing and planning their top-level statements each time (the app and
pgbench -M prepared do that once per connection).

The app's count: the ASGI app (`api.app.create_app`, no HTTP server: uvicorn's parsing is not counted) runs
in a process of its own under callgrind against the running server, N transfers after 100 to warm it, as
the ledger bench sends them (its own key and `Idempotency-Key`); callgrind's counters are dumped before
and after the N, so the figure is theirs alone, both of the process's threads included."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import random
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from bench.common import DATA, create_database, fresh_server, pg_bin
from bench.ledger_bench import history, setup
from bench.pledge_bench import setup as pledge_setup

MOVE = (
    "SELECT * FROM registry_move('transfer', '{a}', 'available', NULL, '{b}', 'available', NULL, 'CCER', 1, "
    "'{{}}'::bigint[], '{{}}'::bigint[], false, 'exchange', '{party}', '{key}', 'bench', NULL, 'r', NULL, NULL, "
    "now(), ARRAY['{a}', '{b}']::uuid[]);"
)
CLAIM = (
    "INSERT INTO idempotency_record (key_id, party_id, key, fingerprint, created_at) "
    "VALUES ('{key}', '{party}', '{k}', '\\x00', now()) ON CONFLICT DO NOTHING RETURNING 1;"
)
STORE = "UPDATE idempotency_record SET status_code = 201, response = '\\x7b7d' WHERE key_id = '{key}' AND key = '{k}';"


def transfers(n: int, pairs: list[tuple[str, str]], key: str, party: str) -> str:
    """As the ledger bench sends them: each pair's first account to its second, one unit."""
    out = []
    for i in range(n):
        a, b = pairs[i % len(pairs)]
        k = uuid.UUID(int=i).hex
        out += ["BEGIN;", CLAIM.format(key=key, party=party, k=k), MOVE.format(a=a, b=b, key=key, party=party),
                STORE.format(key=key, k=k), "COMMIT;"]  # fmt: skip
    return "\n\n".join(out)


def tpcb(n: int) -> str:
    """pgbench's tpcb-like script at scale 10, its random choices drawn here (seeded)."""
    rand, out = random.Random(7), []
    for _ in range(n):
        aid, tid, bid, delta = (
            rand.randint(1, 1_000_000),
            rand.randint(1, 100),
            rand.randint(1, 10),
            rand.randint(-5000, 5000),
        )
        out += ["BEGIN;",
                f"UPDATE pgbench_accounts SET abalance = abalance + {delta} WHERE aid = {aid};",
                f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid};",
                f"UPDATE pgbench_tellers SET tbalance = tbalance + {delta} WHERE tid = {tid};",
                f"UPDATE pgbench_branches SET bbalance = bbalance + {delta} WHERE bid = {bid};",
                f"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({tid}, {bid}, {aid}, {delta}, "
                "CURRENT_TIMESTAMP);",
                "END;"]  # fmt: skip
    return "\n\n".join(out)


def _as_owner() -> list[str]:
    """PostgreSQL runs as its data folder's owner (pgserver makes one when started as root)."""
    owner = DATA.stat().st_uid
    return [] if os.geteuid() == owner else ["runuser", "-u", pwd.getpwuid(owner).pw_name, "--"]


def counted(database: str, sql: str, work: Path) -> int:
    """Instructions of one single-user backend running `sql`, on a fresh copy of the stopped server's data."""
    copy, script, out = work / "data", work / "script.sql", work / "callgrind.out"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(DATA, copy, symlinks=True)
    (copy / "postmaster.pid").unlink(missing_ok=True)
    script.write_text(sql)
    shutil.chown(work, DATA.stat().st_uid)
    for path in (copy, *copy.rglob("*"), script):
        os.chown(path, DATA.stat().st_uid, DATA.stat().st_gid, follow_symlinks=False)
    with script.open() as stdin:
        run = subprocess.run([*_as_owner(), "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                              pg_bin("postgres"), "--single", "-D", str(copy), "-j", database],
                             stdin=stdin, capture_output=True, text=True, check=False)  # fmt: skip
    errors = [line for line in run.stdout.splitlines() + run.stderr.splitlines() if "ERROR" in line]
    assert run.returncode == 0 and not errors, (run.returncode, errors[:3])
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    assert match, "no callgrind totals"
    return int(match.group(1))


def per_transaction(database: str, make: Callable[[int], str], n: int, work: Path) -> int:
    """One transaction's instructions: those of 3N less those of N, over 2N (the backend's start cancels)."""
    return (counted(database, make(3 * n), work) - counted(database, make(n), work)) // (2 * n)


def drive(url: str, n: int, pledges: bool) -> None:
    """In the counted process: the app, N transfers (or N pledge cycles) between two dumps of callgrind's
    counters, after 100 (or a cycle per pledgor) to warm it."""
    os.environ.update(
        {"DATABASE_URL": url, "REGISTRY_SCHEDULER_ENABLED": "false", "REGISTRY_LOG_LEVEL": "WARNING"}
    )
    from api.app import create_app  # imported here: the parent needs none of the app

    app = create_app()
    app.state.render_queue.submit = lambda *a, **k: (
        None
    )  # rendering is not the requests' cost (its own bench)
    answered: dict[int, int] = {}

    async def post(path: str, key: str, body: bytes, idempotency: str | None = None) -> bytes:
        headers = [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"authorization", f"Bearer {key}".encode()),
        ]
        if idempotency is not None:
            headers.append((b"idempotency-key", idempotency.encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        given, answer = False, []

        async def receive() -> dict[str, object]:
            nonlocal given
            if given:
                await asyncio.Event().wait()  # the client never disconnects
            given = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])  # type: ignore[call-overload]
                answered[status] = answered.get(status, 0) + 1
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))

        await app(scope, receive, send)  # type: ignore[arg-type]  # fmt: skip
        return b"".join(answer)  # type: ignore[arg-type]

    if pledges:
        bank, exchange = os.environ["BENCH_BANK"], os.environ["BENCH_EXCHANGE"]
        bodies, keys = json.loads(os.environ["BENCH_BODIES"]), json.loads(os.environ["BENCH_PLEDGORS"])

        async def one(i: int) -> None:
            """The bank's request, the pledgor's consent, the exchange's confirmation (pledge_bench's cycle)."""
            body = bodies[i % len(bodies)].replace("CONTRACT", f"count-{i}")
            pledgor = keys[json.loads(body)["pledgor_account_id"]]
            made = json.loads(await post("/v1/pledges", bank, body.encode()))
            instruction = made["instructions"][0]["id"]
            await post(f"/v1/instructions/{instruction}/consent", pledgor, b"")
            await post(f"/v1/instructions/{instruction}/confirm", exchange, b"")

        warm, expected = len(bodies), {201: n + len(bodies), 200: 2 * (n + len(bodies))}
    else:
        key, pairs = os.environ["BENCH_KEY"], json.loads(os.environ["BENCH_PAIRS"])
        transfer_bodies = [json.dumps({"from_account_id": a, "to_account_id": b, "credit_type": "CCER",
                                       "quantity": 1}).encode() for a, b in pairs]  # fmt: skip

        async def one(i: int) -> None:
            await post("/v1/transfers", key, transfer_bodies[i % len(pairs)], f"{i}-{uuid.uuid4().hex}")

        warm, expected = 100, {201: n + 100}

    def dump() -> None:
        subprocess.run(["callgrind_control", "-d", str(os.getpid())], check=True, capture_output=True)

    async def run() -> None:
        async with app.router.lifespan_context(app):
            for i in range(warm):
                await one(n + i)
            dump()
            for i in range(n):
                await one(i)
            dump()

    asyncio.run(run())
    assert answered == expected, answered


def app_counted(url: str, env: dict[str, str], n: int, work: Path, *, pledges: bool = False) -> int:
    """The app's instructions per transfer (or pledge cycle), counted in a process of its own."""
    out = work / "app.out"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
                    "bench.instructions", "--drive", url, "--transfers", str(n), *(["--pledges"] if pledges else [])],
                   check=True, capture_output=True, env={**os.environ, **env})  # fmt: skip
    match = re.search(r"^(?:summary|totals): (\d+)", (work / "app.out.2").read_text(), re.MULTILINE)
    assert match, "no callgrind totals"
    return int(match.group(1)) // n


def pledge_cycles(n: int) -> None:
    """`--pledges`: the app's instructions a registration cycle (request, consent, confirmation) costs."""
    server = fresh_server()
    url = create_database(server, "registry_bench")
    bank, exchange, bodies, keys = pledge_setup(url, 64)
    env = {"BENCH_BANK": bank, "BENCH_EXCHANGE": exchange, "BENCH_BODIES": json.dumps(bodies),
           "BENCH_PLEDGORS": json.dumps(keys)}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        app = app_counted(url, env, n, Path(tmp), pledges=True)
    print(f"\ninstructions: {n} registration cycles after {len(bodies)}, the app under callgrind")
    print(f"{'a cycle in the app (request, consent, confirmation)':<52} {app:>12,}")
    print(f"{'a request, on average':<52} {app // 3:>12,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=200, help="N: transactions counted (2N, after N)")
    parser.add_argument("--pledges", action="store_true", help="the app's count of N registration cycles")
    parser.add_argument("--history-accounts", type=int, default=1_000, help="accounts of the ledger's past")
    parser.add_argument(
        "--history-batches", type=int, default=2, help="settlement batches of 10,000 among them"
    )
    parser.add_argument("--drive", metavar="URL", help=argparse.SUPPRESS)  # the app's counted process
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.transfers, args.pledges)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    if args.pledges:
        pledge_cycles(args.transfers)
        return

    server = fresh_server()
    url = create_database(server, "registry_bench")
    key_text, pairs = setup(url, 64)
    history(url, args.history_accounts, args.history_batches)
    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin) as conn:
        key, party = conn.execute("SELECT id, party_id FROM api_key").fetchone()  # type: ignore[misc]
    pgbench_url = make_url(create_database(server, "pgbench", migrated=False))
    subprocess.run([pg_bin("pgbench"), "-h", str(pgbench_url.query["host"]), "-U", "postgres", "-i", "-q", "-s",
                    "10", "pgbench"], check=True, capture_output=True)  # fmt: skip
    n = args.transfers
    with tempfile.TemporaryDirectory() as tmp:
        app = app_counted(url, {"BENCH_KEY": key_text, "BENCH_PAIRS": json.dumps(pairs)}, n, Path(tmp))
    subprocess.run([*_as_owner(), pg_bin("pg_ctl"), "-D", str(DATA), "stop", "-m", "fast"], check=True,
                   capture_output=True)  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        transfer = per_transaction(
            "registry_bench", lambda m: transfers(m, pairs, str(key), str(party)), n, work
        )
        baseline = per_transaction("pgbench", tpcb, n, work)
    print(f"\ninstructions: {n} and {3 * n} transactions each, single-user backend under callgrind")
    print(f"{'a transfer (claim, registry_move, store, commit)':<52} {transfer:>12,}")
    print(f"{'a pgbench tpcb-like transaction':<52} {baseline:>12,}")
    print(f"{'a transfer in the app (ASGI, in-process, both threads)':<52} {app:>12,}")
    print(f"ratio tpcb-like / transfer (the transfers' share of pgbench's rate, database alone): "
          f"{baseline / transfer:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
