"""The collateral book over a million pledges, beside a plain `SELECT count(*)` over the same table.

    .venv/bin/python -m bench.report_bench [--pledges 1000000] [--reuse] [--explain]

The book of bench/revaluation_bench.py (one bank, N active pledges of one 100-unit frozen block each),
with each pledge's freeze event in the trail (what the book replays) and one valuation per pledge (the
daily revaluation, run here). Timed in the same run: the collateral book as of that day (groups, totals,
maturity ladder, coverage bands: four set-based statements), the exchange's statistics for the month,
and `SELECT count(*) FROM pledge`."""

from __future__ import annotations

import argparse
import time
from datetime import date, datetime
from uuid import UUID

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from bench.common import DATA, create_database, fresh_server
from bench.revaluation_bench import LOAD, NOW
from registry.calendar import EXCHANGE_TZ
from registry.db import make_engine, start_embedded, unit_of_work
from registry.principal import Principal, Role
from registry.report.collateral_book import (
    GROUPS,
    LADDER_AND_BANDS,
    collateral_book,
    end_of_day,
    load_positions,
)
from registry.report.exchange_stats import exchange_stats
from registry.valuation.service import revalue

BANK = UUID("00000000-0000-0000-0000-0000000000b1")
EVENTS = """
SET session_replication_role = replica;
INSERT INTO audit_event (account_id, seq, kind, credit_type_id, batch_id, serial_start, serial_end, from_account_id,
                         from_status, from_pledge_id, to_account_id, to_status, to_pledge_id, actor_role, operator,
                         occurred_at, prev_hash, hash)
SELECT ('00000000-0000-0000-0001-' || lpad(to_hex(i % 1000), 12, '0'))::uuid, i / 1000 + 1, 'freeze', 1,
       '00000000-0000-0000-0000-00000000ba7c', i * 100 + 1, i * 100 + 100,
       ('00000000-0000-0000-0001-' || lpad(to_hex(i % 1000), 12, '0'))::uuid, 'held',
       ('00000000-0000-0000-0002-' || lpad(to_hex(i), 12, '0'))::uuid,
       ('00000000-0000-0000-0001-' || lpad(to_hex(i % 1000), 12, '0'))::uuid, 'frozen',
       ('00000000-0000-0000-0002-' || lpad(to_hex(i), 12, '0'))::uuid, 'exchange', 'bench',
       '2026-03-01T02:00:00Z', sha256(int8send(i - 1)), sha256(int8send(i))
  FROM generate_series(0, {n} - 1) i;
SET session_replication_role = DEFAULT;
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pledges", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="report on the book the last run loaded")
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN (ANALYZE, BUFFERS) the book's statements"
    )
    args = parser.parse_args()
    n = args.pledges
    if args.reuse:
        url = (
            make_url(start_embedded(DATA)).set(database="report_bench").render_as_string(hide_password=False)
        )
    else:
        url = create_database(fresh_server(), "report_bench")
    plain = url.replace("+psycopg", "")
    engine = make_engine(url, pool_size=1)
    if not args.reuse:
        t0 = time.perf_counter()
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(LOAD.format(n=n))
            conn.execute(EVENTS.format(n=n))
        with unit_of_work(engine) as session:
            revalue(session, now=NOW)
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        print(f"loaded and valued {n:,} pledges in {time.perf_counter() - t0:.0f} s", flush=True)
    today = datetime.now(EXCHANGE_TZ).date()  # the load confirms every pledge "now"

    if args.explain:
        explain(engine, today)
        return
    auditor = Principal(party_id=None, role=Role.AUDITOR)
    with unit_of_work(engine) as session:
        t0 = time.perf_counter()
        book = collateral_book(session, auditor, as_of=today, bank_id=BANK, today=today)
        book_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        stats = exchange_stats(
            session, auditor, period_from=today.replace(day=1), period_to=today, today=today
        )
        stats_s = time.perf_counter() - t0
    with psycopg.connect(plain, autocommit=True) as conn:
        t0 = time.perf_counter()
        counted = conn.execute("SELECT count(*) FROM pledge").fetchone()
        count_s = time.perf_counter() - t0
    engine.dispose()
    total = book.total
    print(f"\nreport_bench: {n:,} active pledges ({counted[0] if counted else '?':,} rows)")
    print(f"  collateral book (groups, totals, ladder, bands): {book_s:8.2f} s  -> {total.pledges:,} pledges, "
          f"{total.units:,} units, value {total.collateral_value:,}, coverage {total.coverage_ratio}")  # fmt: skip
    print(
        f"  exchange statistics for the month:               {stats_s:8.2f} s  -> {stats.registered:,} registered"
    )
    print(f"  SELECT count(*) FROM pledge:                     {count_s:8.2f} s")
    print(f"  ratio collateral book / count(*):                {book_s / count_s:8.1f}")


def explain(engine: Engine, today: date) -> None:
    """Where the book's time goes: the replay into its temporary table, then each aggregate over it."""
    params = {"end": end_of_day(today), "bank": BANK, "as_of": today}
    with unit_of_work(engine) as session:
        plans = [load_positions(session, params, explain=True)]
        for statement in (GROUPS, LADDER_AND_BANDS):
            plans.append(
                list(session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {statement}"), params).scalars())
            )
    engine.dispose()
    print("\n\n".join("\n".join(plan) for plan in plans))


if __name__ == "__main__":
    main()
