"""`registry check`: the whole registry's consistency, on a live database.

The set-based checks (units per credit type, batches tiled, no overlaps, pledge and certificate states,
chain heads, holdings = a replay of the audit trail) and the recomputation of every hash chain run at
the same time on two connections, each in one consistent snapshot: the database does the first, this
process hashes for the second."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Engine, text
from sqlmodel import Session

from registry.audit.service import Verification, verify_chains
from registry.ledger.consistency import CHECKS


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    events: int = 0
    chains: int = 0
    head_hash: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def _sql_checks(engine: Engine, limit_per_check: int) -> tuple[list[str], dict[str, float]]:
    problems: list[str] = []
    timings: dict[str, float] = {}
    with engine.connect() as plain:
        conn = plain.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin(), Session(bind=conn) as session:
            session.execute(text("SET LOCAL statement_timeout = 0"))
            # The replay sorts and hashes every block and event once: in memory, not in batches on disk
            # (on a million blocks ~12 s against ~29 s at the default 4 MB).
            session.execute(text("SET LOCAL work_mem = '256MB'"))
            for title, sql in CHECKS.items():
                began = time.perf_counter()
                rows = session.execute(text(f"{sql} LIMIT {int(limit_per_check)}")).scalars().all()
                timings[title] = time.perf_counter() - began
                problems += [f"{title}: {row}" for row in rows]
    return problems, timings


def _timed_verify(engine: Engine) -> tuple[Verification, float]:
    began = time.perf_counter()
    return verify_chains(engine), time.perf_counter() - began


def run(engine: Engine, *, limit_per_check: int = 20) -> Report:
    report = Report()
    with ThreadPoolExecutor(max_workers=2) as pool:
        chains = pool.submit(_timed_verify, engine)
        checks = pool.submit(_sql_checks, engine, limit_per_check)
        problems, timings = checks.result()
        verified, seconds = chains.result()
        report.timings = {**timings, "audit chains recomputed (alongside the checks)": seconds}
    report.problems = problems
    report.events, report.chains, report.head_hash = verified.events, verified.chains, verified.head_hash
    if verified.first_bad_event is not None:
        bad = verified.first_bad_event
        report.problems.append(
            f"audit chain broken at event {bad.id} ({bad.describe_chain()}): {bad.problem}"
            + (f"; {verified.bad_events} chains broken" if verified.bad_events > 1 else "")
        )
    return report
