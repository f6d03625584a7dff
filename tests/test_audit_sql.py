"""The canonical form of an event is made twice: by Python when the event is written, by PostgreSQL when
whole chains are verified. They must give the same bytes for any text a person can put in an event."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlmodel import Session

from registry.audit.chain import HASH_SQL
from registry.audit.service import verify_chains
from registry.db import unit_of_work
from registry.ledger import service as ledger
from registry.ledger.service import Selection
from tests import factories as f

AWKWARD = [
    '质押 "quoted" \\ backslash',
    "line\nbreak\ttab\rreturn\x08\x0c",
    "control \x01\x1f and delete \x7f",
    "emoji 🌲 and U+2028 \u2028 separator, é, ß, ﬁ",
    "</script><!-- -->",
    "",
]


def test_python_and_postgresql_hash_every_event_alike(committed_engine: Engine) -> None:
    with unit_of_work(committed_engine) as s:
        account = f.account(s)
        f.issue(s, account.id, 100)
        for reason in AWKWARD:
            ledger.retire(s, f.system(), account_id=account.id, selection=Selection(credit_type="CCER", quantity=1),
                          reason=reason)  # fmt: skip
    with committed_engine.connect() as conn:
        rows = conn.execute(text(f"SELECT reason, hash, {HASH_SQL} AS recomputed FROM audit_event")).all()
    assert {r.reason for r in rows} >= set(AWKWARD)
    assert all(bytes(r.hash) == bytes(r.recomputed) for r in rows), [
        r.reason for r in rows if r.hash != r.recomputed
    ]
    assert verify_chains(committed_engine).ok


def test_the_hash_is_inlined_into_the_verifier(session: Session) -> None:
    """`registry check` recomputes millions of hashes: the function must dissolve into the query (a call
    per row cost three times as much), which PostgreSQL does only while its body keeps its promises."""
    plan = "\n".join(
        session.execute(text(f"EXPLAIN (VERBOSE) SELECT {HASH_SQL} FROM audit_event")).scalars().all()
    )
    assert "sha256(" in plan and "registry_event_hash" not in plan, plan
