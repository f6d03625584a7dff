"""Revalue N active pledges (default 1,000,000) in one set-based pass, beside a plain UPDATE touching
the same pledge rows in the same run, and their ratio.

    .venv/bin/python -m bench.revaluation_bench [--pledges 1000000]

The book is generated in SQL (one batch of 100-unit frozen blocks, one pledge each, spread over 1,000
pledgor accounts, with a month of prices), with triggers off for the load only. The revaluation is the
one the daily job runs: reference prices, frozen units per pledge, a valuation row per pledge, margin and
stale alerts moved, webhooks queued (a quarter of the pledges cross their warning line)."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

import psycopg
from sqlalchemy import text

from bench.common import ROOT, create_database, fresh_server
from registry.db import make_engine, unit_of_work
from registry.ledger.consistency import find_problems
from registry.valuation.service import revalue

_REPLAY = "the blocks differ from a replay of the audit trail"

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

LOAD = """
SET session_replication_role = replica;
INSERT INTO party (id, name, kind, created_at) VALUES
    ('00000000-0000-0000-0000-0000000000b1', 'Bench Bank', 'bank', now()),
    ('00000000-0000-0000-0000-0000000000e1', 'Bench Borrower', 'enterprise', now());
INSERT INTO account (id, number, party_id, created_at)
SELECT ('00000000-0000-0000-0001-' || lpad(to_hex(a), 12, '0'))::uuid, 'RB' || lpad(a::text, 10, '0'),
       '00000000-0000-0000-0000-0000000000e1', now()
  FROM generate_series(0, 999) a;
INSERT INTO issuance (id, credit_type_id, project_code, project_type, vintage, quantity, serial_start, serial_end,
                      account_id, issued_at)
VALUES ('00000000-0000-0000-0000-00000000ba7c', 1, 'BENCH', 'forestry', 2024, {n} * 100, 1, {n} * 100,
        '00000000-0000-0000-0001-000000000000', now());
UPDATE credit_type SET next_serial = {n} * 100 + 1 WHERE id = 1;
INSERT INTO pledge (id, status, registration_no, pledgee_party_id, pledgor_account_id, pledgor_party_id,
                    borrower_party_id, contract_no, principal, outstanding_principal, start_date, maturity_date,
                    credit_type_id, max_pledge_rate, warning_ratio, disposal_ratio, valuation_method, created_at,
                    confirmed_at)
SELECT ('00000000-0000-0000-0002-' || lpad(to_hex(i), 12, '0'))::uuid, 'active', 'ZY-2026-B' || i,
       '00000000-0000-0000-0000-0000000000b1', ('00000000-0000-0000-0001-' || lpad(to_hex(i % 1000), 12, '0'))::uuid,
       '00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000e1', 'C-' || i,
       -- 100 t at ~66 CNY is ~6,600 CNY of collateral; a quarter of the loans are large enough to sit under 1.30
       CASE WHEN i % 4 = 0 THEN 5500.00 ELSE 4000.00 END, CASE WHEN i % 4 = 0 THEN 5500.00 ELSE 4000.00 END,
       '2026-01-01', '2027-01-01', 1, 0.90, 1.30, 1.10, 'lower_of', now(), now()
  FROM generate_series(0, {n} - 1) i;
INSERT INTO holding (credit_type_id, batch_id, serial_start, serial_end, account_id, status, pledge_id)
SELECT 1, '00000000-0000-0000-0000-00000000ba7c', i * 100 + 1, i * 100 + 100,
       ('00000000-0000-0000-0001-' || lpad(to_hex(i % 1000), 12, '0'))::uuid, 'frozen',
       ('00000000-0000-0000-0002-' || lpad(to_hex(i), 12, '0'))::uuid
  FROM generate_series(0, {n} - 1) i;
INSERT INTO trade_price (credit_type_id, trade_date, kind, price, volume, entered_at)
SELECT 1, d::date, 'listed', 64 + (extract(day FROM d)::int % 5), 10000, now()
  FROM generate_series('2026-02-02'::date, '2026-03-02'::date, '1 day') d WHERE extract(isodow FROM d) < 6;
SET session_replication_role = DEFAULT;
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pledges", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.pledges
    server = fresh_server()
    url = create_database(server, "registry_bench")
    plain = url.replace("+psycopg", "")
    t0 = time.perf_counter()
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(LOAD.format(n=n))
    load_s = time.perf_counter() - t0
    print(f"loaded {n:,} active pledges and blocks in {load_s:.1f}s")

    engine = make_engine(url, pool_size=1)
    t0 = time.perf_counter()
    with unit_of_work(engine) as session:
        result = revalue(session, now=NOW)
    revalue_s = time.perf_counter() - t0

    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE pledge")
        t0 = time.perf_counter()
        conn.execute(
            "UPDATE pledge SET outstanding_principal = outstanding_principal WHERE status = 'active'"
        )
        update_s = time.perf_counter() - t0

    with unit_of_work(engine) as session:
        levels = dict(session.execute(text("SELECT level, count(*) FROM valuation GROUP BY level")).all())
        # The million blocks are loaded without their history (no audit events), so the replay of the trail
        # would name every one: every other check runs.
        problems = [p for p in find_problems(session, limit_per_check=5) if not p.startswith(_REPLAY)]
    engine.dispose()
    ratio = revalue_s / update_s
    print(f"\nrevaluation_bench: {n:,} active pledges")
    print(
        f"  revaluation (valuations written, alerts moved): {revalue_s:8.2f} s  "
        f"({result.valued:,} valued, {result.raised:,} alerts raised)"
    )
    print(f"  plain UPDATE of the same pledge rows:           {update_s:8.2f} s")
    print(f"  ratio revaluation / plain update:                {ratio:8.2f}  (aim: at most 3)")
    print(f"  levels: {levels}; ledger {problems or 'consistent'} (all checks but the trail's replay)")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "revaluation.json").write_text(
        json.dumps(
            {
                "pledges": n,
                "revalue_s": revalue_s,
                "update_s": update_s,
                "ratio": ratio,
                "raised": result.raised,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
