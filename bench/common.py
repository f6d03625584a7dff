"""What the benchmarks share: a fresh embedded PostgreSQL, the app in its own processes, pgbench."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
from sqlalchemy.engine import make_url

from registry.db import migrate, start_embedded
from registry.ledger import service as ledger
from registry.principal import Actor

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"


def fresh_server() -> str:
    """A new embedded PostgreSQL for this run; returns the maintenance database's URL."""
    if DATA.exists():
        shutil.rmtree(DATA)
    return start_embedded(DATA)


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU of a process so far (Linux /proc: steadier than wall time on a shared machine), with
    its waited-for children's if asked; 0 for a process that is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of proc(5))
    if children:
        used += int(fields[13]) + int(fields[14])  # cutime, cstime
    return used / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    """The running children of a process (uvicorn's workers; a worker's certificate renderers)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def postgres_cpu() -> float:
    """The CPU the bench's PostgreSQL has spent so far: the postmaster with its exited children, and every
    running backend and helper (WAL writer, checkpointer, autovacuum)."""
    postmaster = int((DATA / "postmaster.pid").read_text().split()[0])
    return cpu_seconds(postmaster, children=True) + sum(cpu_seconds(p) for p in children_of(postmaster))


class Spent:
    """The CPU the app's request workers (not their certificate renderers) and PostgreSQL spend over a run."""

    def __init__(self, app: subprocess.Popen[bytes]) -> None:
        self.workers = children_of(app.pid)  # uvicorn's workers (their renderers are their children)

    def __enter__(self) -> Spent:
        self.app, self.db = sum(cpu_seconds(p) for p in self.workers), postgres_cpu()
        return self

    def __exit__(self, *_: object) -> None:
        self.app = sum(cpu_seconds(p) for p in self.workers) - self.app
        self.db = postgres_cpu() - self.db


def create_database(server_url: str, name: str, *, migrated: bool = True) -> str:
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    if migrated:
        migrate(url)
    return url


def funded_accounts(
    session: Any, actor: Actor, owner: UUID, n: int, *, quantity: int, project_code: str, project_type: str
) -> list[UUID]:
    """`n` new accounts of the owner, each issued one batch of `quantity` CCER."""
    ids = []
    for _ in range(n):
        account = ledger.create_account(session, actor, party_id=owner).id
        ledger.issue(session, actor, credit_type="CCER", project_code=project_code, project_type=project_type,
                     vintage=2025, quantity=quantity, account_id=account)  # fmt: skip
        ids.append(account)
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_app(database_url: str, *, workers: int, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REGISTRY_KEY_CACHE_SECONDS": "5",
        "REGISTRY_DB_POOL_SIZE": os.environ.get("REGISTRY_DB_POOL_SIZE", "20"),
        "REGISTRY_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the app did not start")


def pg_bin(name: str) -> str:
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)


def autovacuum_naptime(server_url: str, seconds: int | None) -> None:
    """How often autovacuum looks for tables to analyze (None: the server's default, a minute). A bench's
    tables grow fifty-fold within a run, where a registry in service grows by a fraction a day: the plans a
    connection cached on the first rows (a scan of a 64-row table) last until the next ANALYZE, so a bench
    that wants a service's plans has autovacuum keep up (stop 25: a registration cycle's PostgreSQL CPU
    over 1,500 cycles 10.5–14.3 ms at the default, 6.7–7.6 ms at 1 s)."""
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        if seconds is None:
            conn.execute("ALTER SYSTEM RESET autovacuum_naptime")
        else:
            conn.execute(f"ALTER SYSTEM SET autovacuum_naptime = '{int(seconds)}s'")
        conn.execute("SELECT pg_reload_conf()")


@dataclass(frozen=True)
class Baseline:
    """pgbench before and after a bench's API runs on the same server, both printed; a ratio is taken against
    the higher, so that it never flatters. Until stop 26 pgbench ran after the runs only, and there it is
    often the lower: the server then still has the runs' checkpoint and autovacuum to do, and this machine's
    speed moves within minutes (in one hour of stop 26, 4,052 before and 1,455 after in one run)."""

    before: float
    after: float

    @property
    def tps(self) -> float:
        return max(self.before, self.after)

    def __str__(self) -> str:
        return f"{self.tps:.0f} TPS, the higher of before {self.before:.0f} and after {self.after:.0f}"


def pgbench_tps(server_url: str, *, clients: int, seconds: int, builtin: str = "tpcb-like") -> float:
    """pgbench on the same server, as the database's own ceiling for this machine (on the server's own
    settings: whatever a bench set before is reset)."""
    autovacuum_naptime(server_url, None)
    url = make_url(create_database(server_url, "pgbench", migrated=False))
    host = url.query["host"]
    base = [pg_bin("pgbench"), "-h", str(host), "-U", "postgres"]
    subprocess.run([*base, "-i", "-q", "-s", "10", "pgbench"], check=True, capture_output=True)
    out = subprocess.run(
        [
            *base,
            "-b",
            builtin,
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(seconds),
            "-M",
            "prepared",
            "pgbench",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def ensure_wrk() -> str | None:
    """wrk drives HTTP load from C, so the client does not eat the Python server's CPU."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0:
        return found
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    return shutil.which("wrk")


def wrk_run(wrk: str, url: str, script: str, clients: int, seconds: int) -> dict[str, Any]:
    """One wrk run with a Lua script; throughput, latency percentiles, non-2xx count and wrk's output."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            [wrk, "-t", str(min(clients, 2)), "-c", str(clients), "-d", f"{seconds}s", "--latency", "-s", f.name,
             url],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    finally:
        Path(f.name).unlink()

    def latency_ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    answered = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rps, out
    return {"rps": float(rps.group(1)), "requests": int(answered.group(1)) if answered else 0,
            "p50_ms": latency_ms("50"), "p99_ms": latency_ms("99"),
            "non_2xx": int(errors.group(1)) if errors else 0, "output": out}  # fmt: skip


def load_arguments(
    description: str, *, population: str, default: int, history: int | None = None, naptime: int | None = None
) -> Any:
    """The options every HTTP load benchmark takes, plus how many accounts/pledgors to spread load over and,
    for a bench that builds one, how many accounts of a past (bench.ledger_bench.history) the ledger starts
    with and how often autovacuum looks at it during the runs (autovacuum_naptime)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seconds", type=int, default=20, help="per client count")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="app processes")
    parser.add_argument(f"--{population}", type=int, default=default)
    if history is not None:
        parser.add_argument(
            "--history", type=int, default=history, help="accounts of the ledger's past (0: none)"
        )
    if naptime is not None:
        parser.add_argument("--naptime", type=int, default=naptime,
                            help="autovacuum_naptime during the runs, seconds (0: the server's default)")  # fmt: skip
    return parser.parse_args()


def require_wrk() -> str:
    wrk = ensure_wrk()
    if wrk is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")
    return wrk


def check_after(url: str) -> tuple[list[str], Any]:
    """The ledger checks and the audit verification, after a run."""
    from registry.audit.service import verify_chains
    from registry.db import make_engine, unit_of_work
    from registry.ledger.consistency import find_problems

    engine = make_engine(url, pool_size=1)
    with unit_of_work(engine) as session:
        problems = find_problems(session)
    verified = verify_chains(engine)
    engine.dispose()
    return problems, verified
