"""Trade prices, valuations, alerts, webhooks and their outbox, job runs.

Revision ID: 0003_valuation_alerts
Revises: 0002_pledges
Create Date: 2026-11-23 00:30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_valuation_alerts"
down_revision: str | None = "0002_pledges"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
-- Daily prints per credit type: listed trades (the national market's close is their VWAP) and block
-- trades kept apart, as the exchanges publish them. A later print for the same day replaces it.
CREATE TABLE trade_price (
    credit_type_id smallint NOT NULL CONSTRAINT fk_trade_price_credit_type_id_credit_type REFERENCES credit_type (id),
    trade_date date NOT NULL,
    kind text NOT NULL DEFAULT 'listed' CONSTRAINT ck_trade_price_kind CHECK (kind IN ('listed', 'block')),
    price numeric(12, 2) NOT NULL CONSTRAINT ck_trade_price_price CHECK (price > 0),
    volume bigint NOT NULL CONSTRAINT ck_trade_price_volume CHECK (volume > 0),
    entered_at timestamptz NOT NULL,
    entered_by text,
    CONSTRAINT pk_trade_price PRIMARY KEY (credit_type_id, kind, trade_date)
);

CREATE TABLE valuation (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk_valuation PRIMARY KEY,
    pledge_id uuid NOT NULL CONSTRAINT fk_valuation_pledge_id_pledge REFERENCES pledge (id),
    valued_at timestamptz NOT NULL,
    as_of date NOT NULL,
    method text NOT NULL,
    price numeric(12, 2),
    price_date date,
    stale boolean NOT NULL,
    quantity bigint NOT NULL,
    collateral_value numeric(18, 2),
    outstanding_principal numeric(18, 2) NOT NULL,
    coverage_ratio numeric(12, 4),
    pledge_rate numeric(12, 4),
    level text CONSTRAINT ck_valuation_level CHECK (level IN ('ok', 'warning', 'disposal'))
);
CREATE INDEX ix_valuation_pledge ON valuation (pledge_id, id DESC);
CREATE TRIGGER valuation_append_only BEFORE UPDATE OR DELETE ON valuation
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();

CREATE TABLE alert (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk_alert PRIMARY KEY,
    pledge_id uuid NOT NULL CONSTRAINT fk_alert_pledge_id_pledge REFERENCES pledge (id),
    pledgee_party_id uuid NOT NULL,
    kind text NOT NULL CONSTRAINT ck_alert_kind CHECK (kind IN
        ('margin_warning', 'margin_disposal', 'maturity_upcoming', 'matured_unreleased', 'price_stale')),
    trigger text NOT NULL DEFAULT '',  -- which crossing: for maturity_upcoming the days before ('30', '7', '1')
    status text NOT NULL DEFAULT 'open' CONSTRAINT ck_alert_status CHECK (status IN ('open', 'cleared')),
    raised_at timestamptz NOT NULL,
    cleared_at timestamptz,
    acked_at timestamptz,
    acked_by text,
    details jsonb NOT NULL DEFAULT '{}'
);
-- Raised once per crossing: one open alert per pledge, kind and trigger; maturity reminders once ever.
CREATE UNIQUE INDEX uq_alert_open ON alert (pledge_id, kind, trigger) WHERE status = 'open';
CREATE UNIQUE INDEX uq_alert_maturity_once ON alert (pledge_id, trigger) WHERE kind = 'maturity_upcoming';
CREATE INDEX ix_alert_bank ON alert (pledgee_party_id, id);

CREATE TABLE webhook (
    party_id uuid CONSTRAINT pk_webhook PRIMARY KEY CONSTRAINT fk_webhook_party_id_party REFERENCES party (id),
    url text NOT NULL,
    secret text NOT NULL,  -- needed in clear to sign: HMAC keys cannot be hashed
    updated_at timestamptz NOT NULL
);

-- The outbox: written in the same transaction as the alert, delivered afterwards, retried with backoff.
CREATE TABLE webhook_delivery (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk_webhook_delivery PRIMARY KEY,
    alert_id bigint NOT NULL CONSTRAINT fk_webhook_delivery_alert_id_alert REFERENCES alert (id),
    party_id uuid NOT NULL,
    event text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending' CONSTRAINT ck_webhook_delivery_status
        CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error text,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL
);
CREATE INDEX ix_webhook_delivery_due ON webhook_delivery (next_attempt_at) WHERE status = 'pending';
CREATE INDEX ix_webhook_delivery_party ON webhook_delivery (party_id, id);

-- One row per job and scheduled fire time: a run happens once however many processes schedule it.
CREATE TABLE job_run (
    job text NOT NULL,
    fire_time timestamptz NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    items integer,
    CONSTRAINT pk_job_run PRIMARY KEY (job, fire_time)
);
"""

DOWNGRADE = """
DROP TABLE job_run, webhook_delivery, webhook, alert, valuation, trade_price;
"""


def _run(sql: str) -> None:
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
