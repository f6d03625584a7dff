"""The overlap indexes on a box of (serial, credit type): GiST's geometric operator class, not a range's.

Revision ID: 0018_box_spans
Revises: 0017_leaner_move
Create Date: 2026-12-02 15:00

Every block written (a transfer writes one or two, a settlement batch ~15,000) and every event appended
(two a transfer, ~30,000 a batch) made an entry in a GiST index over an `int8range`, and the block's entry
is also the no-overlap constraint's search. The range operator class is generic over its subtype: each
penalty, union and consistency call deserializes ranges and calls the subtype's functions. Measured on
the settlement bench's ledger (~22,000 blocks): an UPDATE of 4,368 blocks took 190–236 ms with the range
index, 88–102 ms with the box index, 19 ms with none; a million tiled blocks load in 20 s against 38 s
and later inserts stay as fast (no quad-tree degeneration: GiST is an R-tree either way).

`registry_box(ct, s, e)` is the box [s, e + ½] × [ct, ct + ½]. For integer serials and credit types two
such boxes overlap exactly when the blocks share a serial of the same credit type (their ranges overlap):
serials below 2^40 and credit types are exact in float8 (53 bits), and the half-unit margins are far
above the geometric operators' tolerance (10^-6) and far below the unit 1 between distinct integers
(tests/test_ledger.py holds the box and the range overlap equal on the edges and at random). The margins
give every box an area, which GiST's penalty (growth of area) needs to place a single-unit block.

- `holding`: `ex_holding_no_overlap` (same name, still deferred) on `registry_box(...)`; the conservation
  check searches it through the same expression. `span` stays: the conservation arithmetic and the
  pending checks are in ranges.
- `audit_event`: `ix_audit_event_span` on `registry_box(...)`, read by a unit's history; the generated
  `span` column, read by nothing else, is dropped (one value less to compute and store per event).

The issuance constraint (a handful of rows, written once each) stays on its range.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0018_box_spans"
down_revision: str | None = "0017_leaner_move"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOX = """
CREATE FUNCTION registry_box(ct smallint, s bigint, e bigint) RETURNS box
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN ct IS NOT NULL AND s IS NOT NULL AND e IS NOT NULL
                THEN box(point(s::float8, ct::float8), point(e::float8 + 0.5, ct::float8 + 0.5)) END;
"""
BLOCK_BOX = "registry_box(credit_type_id, serial_start, serial_end)"

UPGRADE = f"""
ALTER TABLE holding DROP CONSTRAINT ex_holding_no_overlap;
ALTER TABLE holding ADD CONSTRAINT ex_holding_no_overlap
    EXCLUDE USING gist ({BLOCK_BOX} WITH &&) DEFERRABLE INITIALLY DEFERRED;
DROP INDEX ix_audit_event_span;
ALTER TABLE audit_event DROP COLUMN span;
CREATE INDEX ix_audit_event_span ON audit_event USING gist ({BLOCK_BOX});
"""

DOWNGRADE = """
DROP INDEX ix_audit_event_span;
ALTER TABLE audit_event ADD COLUMN span int8range
    GENERATED ALWAYS AS (registry_span(credit_type_id, serial_start, serial_end)) STORED;
CREATE INDEX ix_audit_event_span ON audit_event USING gist (span);
ALTER TABLE holding DROP CONSTRAINT ex_holding_no_overlap;
ALTER TABLE holding ADD CONSTRAINT ex_holding_no_overlap
    EXCLUDE USING gist (span WITH &&) DEFERRABLE INITIALLY DEFERRED;
"""

RANGE_JOIN = "LEFT JOIN holding h ON h.span && o.span"


def _settlement_bulk() -> ModuleType:
    """Migration 0015, whose holding_conserved this one changes in one line (its text is history)."""
    path = next(Path(__file__).parent.glob("*_settlement_bulk.py"))
    spec = importlib.util.spec_from_file_location("settlement_bulk", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _conserved(box_join: bool) -> str:
    """0015's holding_conserved, its search of the blocks a replaced span meets through the box index
    (`box_join`) or, as it was, through the range index."""
    bulk = _settlement_bulk()
    text: str = bulk.UPGRADE
    begin = text.index("CREATE OR REPLACE FUNCTION holding_conserved()")
    function = text[begin : text.index("END $$;", begin) + len("END $$;")]
    assert function.count(RANGE_JOIN) == 1
    if not box_join:
        return function
    start, end, ct = bulk._ends("o.span")
    return function.replace(
        RANGE_JOIN,
        "LEFT JOIN holding h ON registry_box(h.credit_type_id, h.serial_start, h.serial_end)"
        f" && registry_box(CAST({ct} AS smallint), {start}, {end})",
    )


def _run(sql: str) -> None:
    # Straight to psycopg without parameters, so that the '%' of RAISE formats is not a placeholder.
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(BOX)
    _run(UPGRADE)
    _run(_conserved(box_join=True))


def downgrade() -> None:
    _run(_conserved(box_join=False))
    _run(DOWNGRADE)
    _run("DROP FUNCTION registry_box(smallint, bigint, bigint)")
