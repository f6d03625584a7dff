"""The audit trail's links checked once per statement, set-based, instead of once per row.

Revision ID: 0011_links_per_statement
Revises: 0010_project_types
Create Date: 2026-12-01 23:30

`audit_event_links` refused an event that did not extend its chain (sequence and prev_hash) with a query
per inserted row. A settlement batch inserts tens of thousands of events in one statement: the same rule
is now one query over the statement's new rows (a transition table) joined to the events before them,
after the statement and before it returns. An insert whose events do not all link fails as before, with
the same constraint name.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_links_per_statement"
down_revision: str | None = "0010_project_types"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "'\\x" + "00" * 32 + "'::bytea"

UPGRADE = f"""
DROP TRIGGER audit_event_links ON audit_event;
CREATE OR REPLACE FUNCTION audit_event_links() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE bad record;
BEGIN
    SELECT n.account_id, n.seq INTO bad
      FROM new_events n
      LEFT JOIN audit_event p ON p.account_id = n.account_id AND p.seq = n.seq - 1
     WHERE CASE WHEN n.seq = 1 THEN n.prev_hash <> {GENESIS} ELSE p.hash IS DISTINCT FROM n.prev_hash END
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'event % of chain % does not link to event %', bad.seq, bad.account_id, bad.seq - 1
            USING ERRCODE = 'check_violation', CONSTRAINT = 'audit_event_links';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_event_links AFTER INSERT ON audit_event
    REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION audit_event_links();
"""

DOWNGRADE = f"""
DROP TRIGGER audit_event_links ON audit_event;
CREATE OR REPLACE FUNCTION audit_event_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq = 1 THEN
        IF NEW.prev_hash <> {GENESIS} THEN
            RAISE EXCEPTION 'the first event of a chain links to the genesis hash'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'audit_event_links';
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM audit_event
                       WHERE account_id = NEW.account_id AND seq = NEW.seq - 1 AND hash = NEW.prev_hash) THEN
        RAISE EXCEPTION 'event % of chain % does not link to event %', NEW.seq, NEW.account_id, NEW.seq - 1
            USING ERRCODE = 'check_violation', CONSTRAINT = 'audit_event_links';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_event_links BEFORE INSERT ON audit_event FOR EACH ROW EXECUTE FUNCTION audit_event_links();
"""


def _run(sql: str) -> None:
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
