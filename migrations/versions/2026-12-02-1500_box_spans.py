"""The overlap indexes on a box of (serial, credit type), GiST's geometric operator class; no stored spans.

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
  check searches it through the same expression. The generated `span` column is dropped: each statement
  on `holding` built its expression again (the column's default read from the catalog, `registry_span`
  inlined: ~5 % of a transfer's database instructions) and each row computed and stored it. The
  conservation triggers compute a block's span from its columns where they did read it (their plans are
  kept, so the function is inlined once a session); the pending checks still hold ranges; a named
  selection in `registry_move` compares serials (its credit type is already equal).
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
BOX_JOIN = (
    "LEFT JOIN holding h ON registry_box(h.credit_type_id, h.serial_start, h.serial_end)"
    " && registry_box(CAST({ct} AS smallint), {start}, {end})"
)
NAMED_RANGE = "AND h.span && registry_span(p_credit_type, r.s, r.e);"
NAMED_SERIALS = "AND h.serial_start <= r.e AND h.serial_end >= r.s;"  # the credit type is already equal


def _span(alias: str) -> str:
    """A block's span computed from its columns (the generated column is gone)."""
    return f"registry_span({alias}.credit_type_id, {alias}.serial_start, {alias}.serial_end)"


def _sibling(pattern: str) -> ModuleType:
    """An earlier migration, whose functions this one changes in a line or two (their text is history)."""
    path = next(Path(__file__).parent.glob(pattern))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _function(sql: str, name: str) -> str:
    begin = sql.index(f"FUNCTION {name}()")
    begin = sql.rindex("CREATE", 0, begin)
    return sql[begin : sql.index("END $$;", begin) + len("END $$;")]


def _replaced(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _functions(*, boxes: bool) -> list[str]:
    """0015's conservation functions and 0017's registry_move: as they were, or (`boxes`) with the blocks
    searched through the box index and every span of a block computed from its columns."""
    bulk = _sibling("*_settlement_bulk.py")
    move: str = _sibling("*_leaner_move.py").MOVE
    functions = [_function(bulk.UPGRADE, name)
                 for name in ("holding_conserved", "holding_replaced", "holding_removed", "holding_added")]  # fmt: skip
    if not boxes:
        return [f.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION") for f in [*functions, move]]
    conserved, replaced, removed, added = functions
    start, end, ct = bulk._ends("o.span")
    conserved = _replaced(conserved, RANGE_JOIN, BOX_JOIN.format(ct=ct, start=start, end=end))
    conserved = conserved.replace("h.span", _span("h"))  # o.span, n.span there are the pending spans
    # In the statement triggers o and n are the statement's old and new blocks.
    replaced, removed, added = (
        f.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
        .replace("o.span", _span("o"))
        .replace("n.span", _span("n"))
        for f in (replaced, removed, added)
    )
    return [conserved, replaced, removed, added, _replaced(move, NAMED_RANGE, NAMED_SERIALS)]


def _run(sql: str) -> None:
    # Straight to psycopg without parameters, so that the '%' of RAISE formats is not a placeholder.
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(BOX)
    _run(UPGRADE)
    for function in _functions(boxes=True):
        _run(function)
    _run("ALTER TABLE holding DROP COLUMN span")


def downgrade() -> None:
    _run("ALTER TABLE holding ADD COLUMN span int8range "
         "GENERATED ALWAYS AS (registry_span(credit_type_id, serial_start, serial_end)) STORED")  # fmt: skip
    for function in _functions(boxes=False):
        _run(function)
    _run(DOWNGRADE)
    _run("DROP FUNCTION registry_box(smallint, bigint, bigint)")
