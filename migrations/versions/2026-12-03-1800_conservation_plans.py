"""The conservation check at commit planned once, each batch looked up by its key.

Revision ID: 0019_conservation_plans
Revises: 0018_box_spans
Create Date: 2026-12-03 18:00

Counted with callgrind on a single-user backend over a ledger with a past (bench.instructions: 1,000 more
accounts and 20,000 settled transfers, analyzed, as a ledger in service is), a transfer cost 5.94 M
instructions, of which ~1 M was planning `holding_conserved`'s two queries again at every commit: with
real statistics, PostgreSQL's plan cache judged their generic plans dearer than a custom plan and so planned
each execution anew (on the tables' first few rows, without statistics, it never did: the bench's count of
3.8 M was of plans no ledger in service gets).

- `holding_conserved` runs its queries on generic plans (`plan_cache_mode`, as `registry_move` does).
- Its batch lookup is a subquery on the issuance key. As a join under `LIMIT 1` the generic plan was a
  hash join over a sequential scan of every issuance: the planner expects a violating row soon and stops
  there, but a conserving statement has none, so the scan read the whole table at every commit. The rule is
  unchanged; a block naming no issuance (which the foreign key already refuses) is now reported as outside
  its batch instead of passing.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019_conservation_plans"
down_revision: str | None = "0018_box_spans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The function as migration 0018 left it.
BEFORE = """CREATE OR REPLACE FUNCTION public.holding_conserved()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public', 'pg_temp'
AS $function$
DECLARE
    bad record;
BEGIN
    SELECT o.span, coalesce(sum(upper(h.span * o.span) - lower(h.span * o.span)), 0) AS covered INTO bad
      FROM unnest(NEW.old_spans) WITH ORDINALITY AS o (span, n)
      LEFT JOIN holding h ON registry_box(h.credit_type_id, h.serial_start, h.serial_end) && registry_box(CAST((lower(o.span) >> 40) AS smallint), (lower(o.span) - ((lower(o.span) >> 40) << 40)), (upper(o.span) - 1 - ((lower(o.span) >> 40) << 40)))
     GROUP BY o.n, o.span
    HAVING coalesce(sum(upper(h.span * o.span) - lower(h.span * o.span)), 0) <> upper(o.span) - lower(o.span)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'units % to % of credit type % would be destroyed (% of % still held)',
            (lower(bad.span) - ((lower(bad.span) >> 40) << 40)), (upper(bad.span) - 1 - ((lower(bad.span) >> 40) << 40)), (lower(bad.span) >> 40), bad.covered, upper(bad.span) - lower(bad.span)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'holding_conserved';
    END IF;
    SELECT n.batch_id, (lower(n.span) - ((lower(n.span) >> 40) << 40)) AS serial_start, (upper(n.span) - 1 - ((lower(n.span) >> 40) << 40)) AS serial_end INTO bad
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
END $function$;
"""

JOINED = """      FROM unnest(NEW.new_batches, NEW.new_spans) AS n (batch_id, span)
      JOIN issuance i ON i.id = n.batch_id
     WHERE NOT registry_span(i.credit_type_id, i.serial_start, i.serial_end) @> n.span
     LIMIT 1;"""
BY_KEY = """      FROM unnest(NEW.new_batches, NEW.new_spans) AS n (batch_id, span)
     WHERE NOT coalesce((SELECT registry_span(i.credit_type_id, i.serial_start, i.serial_end) @> n.span
                           FROM issuance i WHERE i.id = n.batch_id), false)
     LIMIT 1;"""
DEFINER = " SET search_path TO 'pg_catalog', 'public', 'pg_temp'\n"
GENERIC = " SET plan_cache_mode TO 'force_generic_plan'\n"


def _after() -> str:
    assert BEFORE.count(JOINED) == 1 and BEFORE.count(DEFINER) == 1
    return BEFORE.replace(JOINED, BY_KEY).replace(DEFINER, DEFINER + GENERIC)


def _run(sql: str) -> None:
    # Straight to psycopg without parameters, so that the '%' of RAISE formats is not a placeholder.
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(_after())


def downgrade() -> None:
    _run(BEFORE)
