"""The audit hash inlined where it is computed: `registry_event_hash` is STABLE, not IMMUTABLE.

Revision ID: 0016_hash_inlined
Revises: 0015_settlement_bulk
Create Date: 2026-12-02 12:00

PostgreSQL inlines a SQL function into the query that calls it only if the function promises no more than
its body keeps: `registry_event_hash` was declared IMMUTABLE, but its body calls `to_json`, which is STABLE,
so every call ran as a function call of its own — 35 µs a hash, against 10.7 µs inlined (200,000 events of
`bench.check_bench`'s ledger). `registry check` recomputes every chain with it (2,000,000 events: ~70 s of
CPU as a call, ~21 s inlined) and `registry_move` hashes each event it writes with it. STABLE is what the
body is: the canonical bytes of uuids, text, numbers and epoch microseconds do not depend on the session.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_hash_inlined"
down_revision: str | None = "0015_settlement_bulk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = (
    "registry_event_hash(bytea, uuid, bigint, text, smallint, uuid, bigint, bigint, uuid, text, uuid, uuid, "
    "text, uuid, text, uuid, uuid, text, uuid, text, uuid, text, timestamptz)"
)


def upgrade() -> None:
    op.execute(f"ALTER FUNCTION {SIGNATURE} STABLE")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {SIGNATURE} IMMUTABLE")
