"""Where a registration cycle's cost goes: statements per request, and CPU per cycle of the app and of
PostgreSQL under load.

    .venv/bin/python -m bench.pledge_cost [--cycles 50] [--seconds 15] [--clients 8] [--show] [--backend-cpu]

First the requests of a pledge's life (the bank's ask, the pledgor's consent, the exchange's confirmation,
then the bank's release and its confirmation) run in this process against a fresh database, every round
trip to PostgreSQL counted per request (each statement, and the BEGIN and COMMIT psycopg sends); `--show`
prints one life's statements; `--backend-cpu` has PostgreSQL log each protocol message's CPU
(`log_statement_stats`, over the counted lives only) and prints, per statement of a life, the backend's
CPU to bind and execute it (a registry_move call's triggers and index writes included; the COMMIT's
deferred checks in the COMMIT), which no client-side timing shows. Then the
bench's load (bench/pledge_bench.py's wrk script: the registration cycle, its first three requests) for
`--seconds` at `--clients`, and the CPU the
uvicorn workers (their own, not the certificate renderers') and every PostgreSQL process spent over it
(/proc/PID/stat), divided by the cycles confirmed. Other work on the machine changes the wall clock, not
these CPU figures (much)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench.common import (
    DATA,
    Spent,
    create_database,
    free_port,
    fresh_server,
    require_wrk,
    start_app,
    wrk_run,
)
from bench.pledge_bench import LUA, setup

_counting = threading.local()


@contextmanager
def counted() -> Iterator[Callable[[], list[str]]]:
    """Every statement psycopg sends from this thread or the request's worker threads while the block
    runs, in order (BEGIN and COMMIT included, as the round trips they are)."""
    seen: list[str] = []
    original_execute = psycopg.Cursor.execute
    original_commit = psycopg.Connection.commit
    original_command = psycopg.Connection._exec_command  # type: ignore[attr-defined]

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original_execute(self, query, *args, **kwargs)
        finally:
            took = f"{1000 * (time.perf_counter() - started):6.2f} ms  "
            if isinstance(query, bytes):  # registry.db.run's, in PostgreSQL's own placeholders
                query = query.decode()
            seen.append(
                took + " ".join(str(query if isinstance(query, str) else query.as_string(self)).split())
            )

    def command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        text = command.decode() if isinstance(command, bytes) else str(command)
        if text.startswith(("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK")):
            seen.append(text)
        return original_command(self, command, *args, **kwargs)

    def commit(self: Any) -> Any:
        seen.append("COMMIT")
        return original_commit(self)

    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    psycopg.Connection.commit = commit  # type: ignore[method-assign]
    psycopg.Connection._exec_command = command  # type: ignore[attr-defined]
    try:
        yield lambda: seen
    finally:
        psycopg.Cursor.execute = original_execute  # type: ignore[method-assign]
        psycopg.Connection.commit = original_commit  # type: ignore[method-assign]
        psycopg.Connection._exec_command = original_command  # type: ignore[attr-defined]


# One entry of the server log (log_line_prefix '%m [%p] '): its pid, its kind and its text.
_ENTRY = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] (LOG|DETAIL|STATEMENT):  (.*)", re.S)
_STATEMENT = re.compile(r"duration: [\d.]+ ms  (?:(?:bind|execute|parse) [^:]*: |statement: )(.*)", re.S)
_USAGE = re.compile(r"([\d.]+) s user, ([\d.]+) s system")


def backend_cpu(log: str) -> dict[tuple[str, str], float]:
    """CPU seconds by (protocol message, statement's first words) in a server log written with
    `log_statement_stats` and `log_min_duration_statement = 0`: each message's usage line follows the
    line naming its statement (in the same backend)."""
    spent: dict[tuple[str, str], float] = {}
    last: dict[str, str] = {}
    message = "?"
    for entry in re.split(r"\n(?=\S+ \S+ \S+ \[\d+\] )", log):
        found = _ENTRY.match(entry)
        if not found:
            continue
        pid, kind, body = found.groups()
        named = _STATEMENT.match(body) if kind == "LOG" else None
        if named:
            last[pid] = " ".join(named.group(1).split())[:100]
        elif kind == "LOG" and body.endswith("STATISTICS"):
            message = body.split()[0]  # BIND, EXECUTE, PARSE, QUERY (a simple query: BEGIN, COMMIT)
        elif kind == "DETAIL" and (usage := _USAGE.search(body)):
            key = (message, last.get(pid, "?"))
            spent[key] = spent.get(key, 0.0) + float(usage.group(1)) + float(usage.group(2))
    return spent


class BackendLog:
    """The server log from `mark()` (the counted lives' start) to the end of `logging_backend_cpu`."""

    def __init__(self) -> None:
        self.start = 0
        self.text = ""

    def mark(self) -> None:
        time.sleep(0.5)  # the logging collector's lines of what came before
        self.start = (DATA / "log").stat().st_size


@contextmanager
def logging_backend_cpu(url: str) -> Iterator[BackendLog]:
    """While the block runs, new sessions of the database log every message's CPU (ALTER DATABASE: the
    app's connections made in the block take it, the bench's load after it does not)."""
    name = make_url(url).database
    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    log = BackendLog()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'ALTER DATABASE "{name}" SET log_statement_stats = on')
        connection.execute(f'ALTER DATABASE "{name}" SET log_min_duration_statement = 0')
        try:
            yield log
        finally:
            connection.execute(f'ALTER DATABASE "{name}" RESET log_statement_stats')
            connection.execute(f'ALTER DATABASE "{name}" RESET log_min_duration_statement')
    time.sleep(0.5)
    with (DATA / "log").open("rb") as f:
        f.seek(log.start)
        log.text = f.read().decode(errors="replace")


def print_backend_cpu(spent: dict[tuple[str, str], float], lives: int, top: int = 30) -> None:
    total = sum(spent.values())
    print(f"\nPostgreSQL's backend CPU a life (log_statement_stats, {lives} lives in process, one client): "
          f"{1000 * total / lives:.2f} ms")  # fmt: skip
    for (message, statement), cpu in sorted(spent.items(), key=lambda item: -item[1])[:top]:
        print(f"  {1000 * cpu / lives:6.3f} ms  {message:<8} {statement}")


def statements(url: str, bank_key: str, exchange_key: str, bodies: list[str], keys: dict[str, str],
               cycles: int, show: bool, *, mark: Callable[[], None] = lambda: None) -> dict[str, float]:  # fmt: skip
    """Round trips per request kind, averaged over `cycles` cycles after a few to warm up."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from registry.config import Settings

    settings = Settings(database_url=url, scheduler_enabled=False, key_cache_seconds=300)
    app = create_app(settings)
    app.state.render_queue.submit = lambda *a, **k: None  # rendering is not the request's cost
    client = TestClient(app)
    per: Counter[str] = Counter()
    shown = False
    warm = len(bodies)  # a cycle per pledgor first, so that every key is cached (as under load)
    for n in range(cycles + warm):
        if n == warm:
            mark()
        body = bodies[n % len(bodies)].replace("CONTRACT", f"count-{n}")
        account = re.search(r'"pledgor_account_id":"([^"]+)"', body)
        assert account
        steps = [
            ("register", "/v1/pledges", bank_key, body),
            ("consent", "/v1/instructions/{id}/consent", keys[account.group(1)], None),
            ("confirm", "/v1/instructions/{id}/confirm", exchange_key, None),
            ("release", "/v1/pledges/{pledge}/instructions", bank_key, '{"type":"release"}'),
            ("confirm release", "/v1/instructions/{id}/confirm", exchange_key, None),
        ]
        instruction = pledge = ""
        for kind, path, key, content in steps:
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            with counted() as seen:
                answer = client.post(
                    path.format(id=instruction, pledge=pledge), headers=headers, content=content
                )
            assert answer.status_code in (200, 201), answer.text
            if kind == "register":
                pledge, instruction = answer.json()["id"], answer.json()["instructions"][0]["id"]
            if kind == "release":
                instruction = answer.json()["id"]
            if n >= warm:
                per[kind] += len(seen())
                if show and not shown:
                    print(f"--- {kind}: {len(seen())} round trips")
                    for s in seen():
                        print("   ", s[:220])
        shown = shown or n >= warm
    app.state.engine.dispose()
    return {kind: per[kind] / cycles for kind, *_ in steps}


def _spy(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes]:
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "--gil", "--nonblocking", "-r", "200", "-p", str(pid), "-d", str(seconds)]
    return subprocess.Popen(
        [*command, "-f", "raw", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=50, help="cycles counted in process")
    parser.add_argument("--seconds", type=int, default=15, help="of load")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="app processes")
    parser.add_argument("--pledgors", type=int, default=64)
    parser.add_argument("--show", action="store_true", help="print one life's statements")
    parser.add_argument(
        "--backend-cpu", action="store_true", help="PostgreSQL's CPU per statement of a life (server log)"
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy (--gil) each worker over the load, raw stacks here"
    )
    args = parser.parse_args()
    wrk = require_wrk()
    server = fresh_server()
    url = create_database(server, "registry_bench")
    bank_key, exchange_key, bodies, keys = setup(url, args.pledgors)
    if args.backend_cpu:
        with logging_backend_cpu(url) as log:
            counts = statements(
                url, bank_key, exchange_key, bodies, keys, args.cycles, args.show, mark=log.mark
            )
        print_backend_cpu(backend_cpu(log.text), args.cycles)
    else:
        counts = statements(url, bank_key, exchange_key, bodies, keys, args.cycles, args.show)

    pledgor_keys = ",".join(f'["{account}"] = "Bearer {key}"' for account, key in keys.items())
    script = LUA % (",".join(f"'{b}'" for b in bodies), pledgor_keys, bank_key, exchange_key)
    port = free_port()
    app = start_app(url, workers=args.workers, port=port)
    try:
        wrk_run(wrk, f"http://127.0.0.1:{port}", script.replace("B-CONTRACT", "W-CONTRACT"), args.clients, 3)
        with Spent(app) as spent:
            spies = [_spy(pid, args.profile / f"worker-{n}.txt", args.seconds)
                     for n, pid in enumerate(spent.workers)] if args.profile else []  # fmt: skip
            run = wrk_run(wrk, f"http://127.0.0.1:{port}", script, args.clients, args.seconds)
        app_used, db_used = spent.app, spent.db
        for spy in spies:
            spy.wait(timeout=60)
    finally:
        app.terminate()
        app.wait(timeout=30)
    found = re.search(r"CYCLES confirms=(\d+) consents=(\d+) registers=(\d+)", run["output"])
    assert found, run["output"]
    cycles = int(found.group(1))
    print(f"\npledge_cost: round trips a request (statements with BEGIN and COMMIT), {args.cycles} cycles")
    for kind, n in counts.items():
        print(f"  {kind:<15} {n:5.1f}")
    cycle = ("register", "consent", "confirm")
    print(f"  {'cycle':<15} {sum(counts[k] for k in cycle):5.1f}  (the three above; the load runs these)")
    print(f"  {'a life':<15} {sum(counts.values()):5.1f}  (all five)")
    print(f"load: {args.clients} clients, {args.seconds} s, {args.workers} workers: {cycles / args.seconds:.1f} "
          f"cycles/s ({run['rps']:.0f} requests/s, p99 {run['p99_ms']:.0f} ms, non-2xx {run['non_2xx']})")  # fmt: skip
    print(f"CPU a cycle: app {1000 * app_used / cycles:.2f} ms, PostgreSQL {1000 * db_used / cycles:.2f} ms "
          f"(app {app_used:.1f} s, db {db_used:.1f} s over {cycles} cycles)")  # fmt: skip


if __name__ == "__main__":
    main()
