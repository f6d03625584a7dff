"""Fault isolation: valuations wide enough for any pledge, webhook deliveries leased one per bank,
failed certificate renderings counted.

Revision ID: 0009_fault_isolation
Revises: 0008_joint_application
Create Date: 2026-12-01 21:00

- `valuation`: a pledge of 20,000 t with a principal of 0.01 CNY has a coverage of 132,000,000 at
  66 CNY/t, past `numeric(12,4)`, and one statement values every pledge: one such row failed every
  revaluation. The columns now hold every value the inputs allow (quantity ≤ 2^40 per credit type,
  price < 10^10, principal ≥ 0.01): collateral value < 1.1·10^22, coverage < 1.1·10^24, pledge rate
  < 10^18. Widening a numeric's precision at the same scale rewrites nothing. `error` marks a pledge the
  revaluation could not value (it is then valued alone; see registry/valuation/service.py).
- `webhook_delivery.lease_until`: a delivery being sent is leased, no transaction open while the
  bank's endpoint is called; a bank has at most one delivery in flight. Errors recorded by earlier
  versions (exception texts, a port scanner for the bank) become categories.
- `certificate_rendering`: renderings that failed, so that the sweep tries the others first and gives
  up on a certificate after a few failures (a download still renders it on demand).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_fault_isolation"
down_revision: str | None = "0008_joint_application"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
ALTER TABLE valuation
    ALTER COLUMN collateral_value TYPE numeric(26, 2),
    ALTER COLUMN coverage_ratio TYPE numeric(30, 4),
    ALTER COLUMN pledge_rate TYPE numeric(30, 4),
    ADD COLUMN error text CONSTRAINT ck_valuation_error CHECK (error IN ('out_of_range', 'error'));

ALTER TABLE webhook_delivery ADD COLUMN lease_until timestamptz;
CREATE INDEX ix_webhook_delivery_party_due ON webhook_delivery (party_id, next_attempt_at) WHERE status = 'pending';
UPDATE webhook_delivery
   SET last_error = CASE WHEN last_error ~ '^HTTP [0-9]{3}$' THEN 'http_' || substr(last_error, 6) ELSE 'error' END
 WHERE last_error IS NOT NULL
   AND last_error !~ '^(timeout|refused|tls|dns|address_not_public|invalid_url|error|http_[0-9]{3})$';

CREATE TABLE certificate_rendering (
    certificate_id uuid CONSTRAINT pk_certificate_rendering PRIMARY KEY
        CONSTRAINT fk_certificate_rendering_certificate_id_certificate REFERENCES certificate (id),
    failures integer NOT NULL CONSTRAINT ck_certificate_rendering_failures CHECK (failures > 0),
    last_failed_at timestamptz NOT NULL,
    last_error text NOT NULL
);
"""

DOWNGRADE = """
DROP TABLE certificate_rendering;
DROP INDEX ix_webhook_delivery_party_due;
ALTER TABLE webhook_delivery DROP COLUMN lease_until;
ALTER TABLE valuation DROP COLUMN error;
-- Narrowing fails if a wide value is stored: such rows must be dealt with by hand first.
ALTER TABLE valuation
    ALTER COLUMN collateral_value TYPE numeric(18, 2),
    ALTER COLUMN coverage_ratio TYPE numeric(12, 4),
    ALTER COLUMN pledge_rate TYPE numeric(12, 4);
"""


def _run(sql: str) -> None:
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
