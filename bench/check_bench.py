"""`registry check` on a million blocks: how long the whole consistency check takes.

    .venv/bin/python -m bench.check_bench [--blocks 1000000] [--events-per-block 2]

The ledger is generated, not replayed through the service (that would take hours): one CCER batch
tiled by N blocks of 100 units over 1,000 accounts, and for each block `--events-per-block` audit events
in its account's hash chain (an earlier owner, then the current one), hashed with the registry's own
chain function and loaded with COPY, triggers off for the load only. Then the command itself runs, as
an operator would: `registry check --timings`. Printed beside it, in the same run: a plain
`SELECT count(*)` over the blocks and over the events, and the ratio."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import psycopg
from sqlalchemy.engine import make_url

from bench.common import DATA, ROOT, create_database, fresh_server
from registry.audit.chain import GENESIS, link
from registry.db import start_embedded

AT = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
ACCOUNTS = 1000
PARTY = uuid.UUID(int=0xE1)
BATCH = uuid.UUID(int=0xBA7C)


def account_id(n: int) -> uuid.UUID:
    return uuid.UUID(int=(1 << 64) + n)


def generate(conn: psycopg.Connection, blocks: int, per_block: int) -> None:
    conn.execute("SET session_replication_role = replica")
    conn.execute(
        "INSERT INTO party (id, name, kind, created_at) VALUES (%s, 'Bench Co', 'enterprise', %s)",
        (PARTY, AT),
    )
    with conn.cursor().copy("COPY account (id, number, party_id, status, created_at) FROM STDIN") as copy:
        for a in range(ACCOUNTS):
            copy.write_row((account_id(a), f"RB{a:010d}", PARTY, "active", AT))
    conn.execute(
        "INSERT INTO issuance (id, credit_type_id, project_code, project_type, vintage, quantity, serial_start,"
        " serial_end, account_id, issued_at) VALUES (%s, 1, 'BENCH', 'forestry', 2024, %s, 1, %s, %s, %s)",
        (BATCH, blocks * 100, blocks * 100, account_id(0), AT),
    )
    conn.execute("UPDATE credit_type SET next_serial = %s WHERE id = 1", (blocks * 100 + 1,))
    with conn.cursor().copy(
        "COPY holding (credit_type_id, batch_id, serial_start, serial_end, account_id, status) FROM STDIN"
    ) as copy:
        for b in range(blocks):
            copy.write_row((1, BATCH, b * 100 + 1, b * 100 + 100, account_id(b % ACCOUNTS), "available"))
    heads: dict[int, tuple[int, bytes]] = {}
    columns = (
        "account_id, seq, kind, credit_type_id, batch_id, serial_start, serial_end, from_account_id, from_status,"
        " from_pledge_id, to_account_id, to_status, to_pledge_id, actor_role, actor_party_id, actor_key_id,"
        " operator, on_behalf_of, request_id, instruction_id, reason, occurred_at, prev_hash, hash"
    )
    with conn.cursor().copy(f"COPY audit_event ({columns}) FROM STDIN") as copy:
        for b in range(blocks):
            owner = b % ACCOUNTS
            for step in range(per_block):
                seq, prev = heads.get(owner, (0, GENESIS))
                holder = account_id(owner if step == per_block - 1 else (owner + 1 + step) % ACCOUNTS)
                event = {
                    "account_id": account_id(owner), "seq": seq + 1, "kind": "issue" if step == 0 else "transfer",
                    "credit_type_id": 1, "batch_id": BATCH, "serial_start": b * 100 + 1, "serial_end": b * 100 + 100,
                    "from_account_id": None, "from_status": None, "from_pledge_id": None,
                    "to_account_id": holder, "to_status": "available", "to_pledge_id": None,
                    "actor_role": "system", "actor_party_id": None, "actor_key_id": None, "operator": "bench",
                    "on_behalf_of": None, "request_id": None, "instruction_id": None, "reason": None,
                    "occurred_at": AT,
                }  # fmt: skip
                digest = link(prev, event)
                copy.write_row((*event.values(), prev, digest))
                heads[owner] = (seq + 1, digest)
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE account SET audit_seq = %s, audit_head = %s WHERE id = %s",
            [(seq, head, account_id(owner)) for owner, (seq, head) in heads.items()],
        )
    conn.execute("SET session_replication_role = origin")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1_000_000)
    parser.add_argument("--events-per-block", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="check the ledger the last run generated")
    args = parser.parse_args()
    if args.reuse:
        url = make_url(start_embedded(DATA)).set(database="checkbench").render_as_string(hide_password=False)
    else:
        url = create_database(fresh_server(), "checkbench")
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    began = time.perf_counter()
    if not args.reuse:
        with psycopg.connect(plain, autocommit=False) as conn:
            generate(conn, args.blocks, args.events_per_block)
            conn.commit()
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        load = time.perf_counter() - began
        t = time.perf_counter()
        blocks = conn.execute("SELECT count(*) FROM holding").fetchone()[0]  # type: ignore[index]
        events = conn.execute("SELECT count(*) FROM audit_event").fetchone()[0]  # type: ignore[index]
        counting = time.perf_counter() - t
    print(
        f"{'reused' if args.reuse else 'generated'} {blocks:,} blocks and {events:,} events ({load:.0f} s)",
        flush=True,
    )
    t = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "registry.cli", "check", "--timings"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - t
    print(run.stdout.strip())
    print(run.stderr.strip())
    print(f"\nregistry check: {elapsed:.1f} s (exit {run.returncode}); count(*) over blocks and events: "
          f"{counting:.2f} s; ratio {elapsed / counting:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
