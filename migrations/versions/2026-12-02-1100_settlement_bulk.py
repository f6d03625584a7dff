"""Settlement in bulk: conservation checked once per statement, over the statement's set of blocks.

Revision ID: 0015_settlement_bulk
Revises: 0014_fewer_block_writes
Create Date: 2026-12-02 11:00

`holding_conserved` was a deferred trigger per row of `holding`: at commit, one query (a GiST search) for
every block an UPDATE or DELETE replaced, and one issuance lookup for every block written. A settlement
batch replaces ~6,000–12,000 blocks: ~1 s of the commit. The rule is the same, checked set-based:

- after each statement on `holding` (INSERT, UPDATE, DELETE, and COPY, which runs INSERT's triggers), a
  statement-level trigger gathers from the statement's transition tables the spans the statement replaced
  and the blocks it wrote into one row of `holding_pending_check`. An UPDATE whose new block covers its
  old one replaces nothing (its units are still there, and whatever later replaces the new block is
  checked in turn); an UPDATE whose new block lies inside its old one writes nothing outside its batch (the
  old one lay inside it, and a block cannot change batch: `holding_transition`). A statement that does
  neither (a status change, a pledge named) adds no row.
- that row's deferred constraint trigger, still named `holding_conserved`, runs at commit (or at `SET
  CONSTRAINTS ... IMMEDIATE`) with the same two rules in two queries over the whole statement: every span
  replaced is still covered exactly, every block written lies inside its batch; the same messages, the
  same SQLSTATE (check_violation) and constraint name. It then removes the row: the table is empty
  outside the transactions that write to it.

The table and the trigger functions belong to the migrating role (SECURITY DEFINER); the app's role has
no privilege on the table, so it can neither remove a pending check nor add one.

The span indexes stay GiST. SP-GiST (a range quad tree) was faster on a settlement's fragments (~60 µs a
block against ~140), but the registry allocates serials in increasing order, and a quad tree fed sequential
ranges never rebalances: its exclusion insert grew from 0.2 to 0.8 ms a block between 50,000 and 200,000
tiled blocks, where GiST stayed at 0.1 ms (a million-block ledger could not be loaded in 7 minutes).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_settlement_bulk"
down_revision: str | None = "0014_fewer_block_writes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The serial and credit type of a span's ends (registry_span packs (credit type << 40) + serial).
_CT = "(lower({s}) >> 40)"
_START = "(lower({s}) - ((lower({s}) >> 40) << 40))"
_END = "(upper({s}) - 1 - ((lower({s}) >> 40) << 40))"


def _ends(span: str) -> tuple[str, str, str]:
    return _START.format(s=span), _END.format(s=span), _CT.format(s=span)


_OLD_START, _OLD_END, _OLD_CT = _ends("bad.span")
_NEW_START, _NEW_END, _ = _ends("n.span")
DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp"

UPGRADE = f"""
CREATE TABLE holding_pending_check (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk_holding_pending_check PRIMARY KEY,
    old_spans int8range[] NOT NULL,
    new_batches uuid[] NOT NULL,
    new_spans int8range[] NOT NULL
);
REVOKE ALL ON holding_pending_check FROM PUBLIC;

DROP TRIGGER holding_conserved ON holding;

-- Units are neither created nor destroyed except by issuance: at commit, every range a block used to
-- cover is still covered exactly, and every block lies inside its batch. Retirement is a status.
CREATE OR REPLACE FUNCTION holding_conserved() RETURNS trigger LANGUAGE plpgsql {DEFINER} AS $$
DECLARE
    bad record;
BEGIN
    SELECT o.span, coalesce(sum(upper(h.span * o.span) - lower(h.span * o.span)), 0) AS covered INTO bad
      FROM unnest(NEW.old_spans) WITH ORDINALITY AS o (span, n)
      LEFT JOIN holding h ON h.span && o.span
     GROUP BY o.n, o.span
    HAVING coalesce(sum(upper(h.span * o.span) - lower(h.span * o.span)), 0) <> upper(o.span) - lower(o.span)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'units % to % of credit type % would be destroyed (% of % still held)',
            {_OLD_START}, {_OLD_END}, {_OLD_CT}, bad.covered, upper(bad.span) - lower(bad.span)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'holding_conserved';
    END IF;
    SELECT n.batch_id, {_NEW_START} AS serial_start, {_NEW_END} AS serial_end INTO bad
      FROM unnest(NEW.new_batches, NEW.new_spans) AS n (batch_id, span)
      JOIN issuance i ON i.id = n.batch_id
     WHERE NOT registry_span(i.credit_type_id, i.serial_start, i.serial_end) @> n.span
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'block % to % lies outside its batch %', bad.serial_start, bad.serial_end, bad.batch_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'holding_conserved';
    END IF;
    DELETE FROM holding_pending_check WHERE id = NEW.id;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER holding_conserved AFTER INSERT ON holding_pending_check
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION holding_conserved();

CREATE FUNCTION holding_replaced() RETURNS trigger LANGUAGE plpgsql {DEFINER} AS $$
BEGIN
    INSERT INTO holding_pending_check (old_spans, new_batches, new_spans)
    SELECT coalesce(array_agg(o.span) FILTER (WHERE NOT n.span @> o.span), '{{}}'),
           coalesce(array_agg(n.batch_id) FILTER (WHERE NOT o.span @> n.span), '{{}}'),
           coalesce(array_agg(n.span) FILTER (WHERE NOT o.span @> n.span), '{{}}')
      FROM old_blocks o JOIN new_blocks n ON n.id = o.id
    HAVING bool_or(n.span <> o.span);
    RETURN NULL;
END $$;
CREATE FUNCTION holding_removed() RETURNS trigger LANGUAGE plpgsql {DEFINER} AS $$
BEGIN
    INSERT INTO holding_pending_check (old_spans, new_batches, new_spans)
    SELECT array_agg(o.span), '{{}}', '{{}}' FROM old_blocks o HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE FUNCTION holding_added() RETURNS trigger LANGUAGE plpgsql {DEFINER} AS $$
BEGIN
    INSERT INTO holding_pending_check (old_spans, new_batches, new_spans)
    SELECT '{{}}', array_agg(n.batch_id), array_agg(n.span) FROM new_blocks n HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE TRIGGER holding_conserved_update AFTER UPDATE ON holding
    REFERENCING OLD TABLE AS old_blocks NEW TABLE AS new_blocks
    FOR EACH STATEMENT EXECUTE FUNCTION holding_replaced();
CREATE TRIGGER holding_conserved_delete AFTER DELETE ON holding
    REFERENCING OLD TABLE AS old_blocks FOR EACH STATEMENT EXECUTE FUNCTION holding_removed();
CREATE TRIGGER holding_conserved_insert AFTER INSERT ON holding
    REFERENCING NEW TABLE AS new_blocks FOR EACH STATEMENT EXECUTE FUNCTION holding_added();

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'registry_app') THEN
        -- the default privileges of migration 0006 granted it on the new table: taken back
        REVOKE ALL ON holding_pending_check FROM registry_app;
        REVOKE ALL ON SEQUENCE holding_pending_check_id_seq FROM registry_app;
    END IF;
END $$;
"""

DOWNGRADE = """
DROP TRIGGER holding_conserved_update ON holding;
DROP TRIGGER holding_conserved_delete ON holding;
DROP TRIGGER holding_conserved_insert ON holding;
DROP TRIGGER holding_conserved ON holding_pending_check;
DROP FUNCTION holding_replaced, holding_removed, holding_added, holding_conserved;
DROP TABLE holding_pending_check;

CREATE FUNCTION holding_conserved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    covered bigint;
    batch issuance%ROWTYPE;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT coalesce(sum(upper(h.span * OLD.span) - lower(h.span * OLD.span)), 0) INTO covered
          FROM holding h WHERE h.span && OLD.span;
        IF covered <> OLD.quantity THEN
            RAISE EXCEPTION 'units % to % of credit type % would be destroyed (% of % still held)',
                OLD.serial_start, OLD.serial_end, OLD.credit_type_id, covered, OLD.quantity
                USING ERRCODE = 'check_violation', CONSTRAINT = 'holding_conserved';
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT * INTO batch FROM issuance WHERE id = NEW.batch_id;
        IF batch.credit_type_id <> NEW.credit_type_id
           OR NEW.serial_start < batch.serial_start OR NEW.serial_end > batch.serial_end THEN
            RAISE EXCEPTION 'block % to % lies outside its batch %', NEW.serial_start, NEW.serial_end, NEW.batch_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'holding_conserved';
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER holding_conserved AFTER INSERT OR UPDATE OR DELETE ON holding
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION holding_conserved();
"""


def _run(sql: str) -> None:
    # Straight to psycopg without parameters, so that the '%' of RAISE formats is not a placeholder.
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
