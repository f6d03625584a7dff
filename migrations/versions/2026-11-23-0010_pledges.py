"""Pledges and their instructions: banks ask, the exchange confirms.

Revision ID: 0002_pledges
Revises: 0001_ledger_core
Create Date: 2026-11-23 00:10
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_pledges"
down_revision: str | None = "0001_ledger_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
CREATE SEQUENCE registration_no_seq;

CREATE TABLE pledge (
    id uuid CONSTRAINT pk_pledge PRIMARY KEY,
    status text NOT NULL CONSTRAINT ck_pledge_status
        CHECK (status IN ('pending', 'active', 'rejected', 'cancelled', 'expired', 'released', 'disposed')),
    registration_no text CONSTRAINT uq_pledge_registration_no UNIQUE,
    pledgee_party_id uuid NOT NULL CONSTRAINT fk_pledge_pledgee_party_id_party REFERENCES party (id),
    pledgor_account_id uuid NOT NULL CONSTRAINT fk_pledge_pledgor_account_id_account REFERENCES account (id),
    pledgor_party_id uuid NOT NULL CONSTRAINT fk_pledge_pledgor_party_id_party REFERENCES party (id),
    borrower_party_id uuid NOT NULL CONSTRAINT fk_pledge_borrower_party_id_party REFERENCES party (id),
    contract_no text NOT NULL,
    principal numeric(18, 2) NOT NULL CONSTRAINT ck_pledge_principal_positive CHECK (principal > 0),
    outstanding_principal numeric(18, 2) NOT NULL
        CONSTRAINT ck_pledge_outstanding CHECK (outstanding_principal >= 0 AND outstanding_principal <= principal),
    currency text NOT NULL DEFAULT 'CNY' CONSTRAINT ck_pledge_currency CHECK (currency = 'CNY'),
    start_date date NOT NULL,
    maturity_date date NOT NULL,
    credit_type_id smallint NOT NULL CONSTRAINT fk_pledge_credit_type_id_credit_type REFERENCES credit_type (id),
    max_pledge_rate numeric(7, 4) NOT NULL
        CONSTRAINT ck_pledge_max_pledge_rate CHECK (max_pledge_rate > 0 AND max_pledge_rate <= 1),
    warning_ratio numeric(7, 4) NOT NULL,
    disposal_ratio numeric(7, 4) NOT NULL,
    valuation_method text NOT NULL CONSTRAINT ck_pledge_valuation_method
        CHECK (valuation_method IN ('vwap', 'last_close', 'lower_of')),
    haircut numeric(5, 4) NOT NULL DEFAULT 0 CONSTRAINT ck_pledge_haircut CHECK (haircut >= 0 AND haircut < 1),
    pboc_registration_no text,
    bank_ref text,
    created_at timestamptz NOT NULL,
    hold_expires_at timestamptz,
    confirmed_at timestamptz,
    closed_at timestamptz,
    CONSTRAINT ck_pledge_term CHECK (maturity_date > start_date),
    CONSTRAINT ck_pledge_lines CHECK (disposal_ratio > 0 AND disposal_ratio < warning_ratio AND warning_ratio <= 10),
    CONSTRAINT ck_pledge_registered CHECK ((status IN ('pending', 'rejected', 'cancelled', 'expired')) = (registration_no IS NULL)),
    CONSTRAINT ck_pledge_parties CHECK (pledgee_party_id <> pledgor_party_id)
);
CREATE INDEX ix_pledge_pledgee ON pledge (pledgee_party_id, status, id);
CREATE INDEX ix_pledge_pledgor ON pledge (pledgor_party_id, id);
CREATE INDEX ix_pledge_borrower ON pledge (borrower_party_id, id);
CREATE INDEX ix_pledge_status ON pledge (status, id);

-- Held and frozen blocks name a pledge that exists.
ALTER TABLE holding ADD CONSTRAINT fk_holding_pledge_id_pledge FOREIGN KEY (pledge_id) REFERENCES pledge (id);

CREATE TABLE instruction (
    id uuid CONSTRAINT pk_instruction PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT uq_instruction_seq UNIQUE,  -- arrival order
    pledge_id uuid NOT NULL CONSTRAINT fk_instruction_pledge_id_pledge REFERENCES pledge (id),
    type text NOT NULL CONSTRAINT ck_instruction_type CHECK (type IN ('register', 'top_up', 'release', 'dispose')),
    status text NOT NULL CONSTRAINT ck_instruction_status
        CHECK (status IN ('pending', 'confirmed', 'rejected', 'cancelled', 'expired')),
    quantity bigint CONSTRAINT ck_instruction_quantity CHECK (quantity > 0),
    blocks jsonb,
    outstanding_principal numeric(18, 2) CONSTRAINT ck_instruction_outstanding CHECK (outstanding_principal >= 0),
    to_account_id uuid CONSTRAINT fk_instruction_to_account_id_account REFERENCES account (id),
    price numeric(18, 2) CONSTRAINT ck_instruction_price CHECK (price >= 0),
    proceeds numeric(18, 2) CONSTRAINT ck_instruction_proceeds CHECK (proceeds >= 0),
    reason text,
    requested_by_party_id uuid NOT NULL,
    requested_by_key_id uuid,
    requested_by_operator text,
    created_at timestamptz NOT NULL,
    hold_expires_at timestamptz,
    reviewed_by text,
    reviewed_at timestamptz,
    decided_by text,
    decided_by_key_id uuid,
    decided_at timestamptz,
    decision_reason text,
    applied_quantity bigint,
    CONSTRAINT ck_instruction_decided CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE INDEX ix_instruction_pledge ON instruction (pledge_id, seq);
CREATE INDEX ix_instruction_queue ON instruction (status, seq);
-- A pledge has at most one instruction waiting for the exchange at a time.
CREATE UNIQUE INDEX uq_instruction_one_pending ON instruction (pledge_id) WHERE status = 'pending';

-- Every transition happens at most once: a decided instruction never changes again, so a rejected or
-- cancelled one can never be confirmed later, and a confirmed release can never be applied twice.
CREATE FUNCTION instruction_decided_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'instruction % is % and cannot change', OLD.id, OLD.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'instruction_decided_once';
    END IF;
    IF NEW.id <> OLD.id OR NEW.pledge_id <> OLD.pledge_id OR NEW.type <> OLD.type
       OR NEW.seq <> OLD.seq OR NEW.requested_by_party_id <> OLD.requested_by_party_id
       OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'what an instruction asks cannot be edited'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'instruction_decided_once';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER instruction_decided_once BEFORE UPDATE ON instruction
    FOR EACH ROW EXECUTE FUNCTION instruction_decided_once();
CREATE TRIGGER instruction_no_delete BEFORE DELETE ON instruction
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();

-- A closed pledge stays closed.
CREATE FUNCTION pledge_closed_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('rejected', 'cancelled', 'expired', 'released', 'disposed') THEN
        RAISE EXCEPTION 'pledge % is % and cannot change', OLD.id, OLD.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'pledge_closed_once';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER pledge_closed_once BEFORE UPDATE ON pledge
    FOR EACH ROW EXECUTE FUNCTION pledge_closed_once();
CREATE TRIGGER pledge_no_delete BEFORE DELETE ON pledge
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();
"""

DOWNGRADE = """
ALTER TABLE holding DROP CONSTRAINT fk_holding_pledge_id_pledge;
DROP TABLE instruction, pledge;
DROP FUNCTION instruction_decided_once, pledge_closed_once;
DROP SEQUENCE registration_no_seq;
"""


def _run(sql: str) -> None:
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
