"""Indexes the quarterly reports read by: a pledge's events, pledges by confirmation and closing time.

Revision ID: 0007_report_indexes
Revises: 0006_app_role
Create Date: 2026-11-23 03:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_report_indexes"
down_revision: str | None = "0006_app_role"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
CREATE INDEX ix_audit_event_to_pledge ON audit_event (to_pledge_id, occurred_at) WHERE to_pledge_id IS NOT NULL;
CREATE INDEX ix_audit_event_from_pledge ON audit_event (from_pledge_id, occurred_at) WHERE from_pledge_id IS NOT NULL;
CREATE INDEX ix_pledge_confirmed_at ON pledge (confirmed_at) WHERE confirmed_at IS NOT NULL;
CREATE INDEX ix_pledge_closed_at ON pledge (closed_at) WHERE closed_at IS NOT NULL;
CREATE INDEX ix_valuation_pledge_time ON valuation (pledge_id, valued_at DESC);
"""

DOWNGRADE = """
DROP INDEX ix_valuation_pledge_time, ix_pledge_closed_at, ix_pledge_confirmed_at, ix_audit_event_from_pledge,
    ix_audit_event_to_pledge;
"""


def _run(sql: str) -> None:
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
