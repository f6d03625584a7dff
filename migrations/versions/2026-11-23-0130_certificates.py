"""Pledge certificates (versions, status, the issued PDF and its digest) and rate-limit counters.

Revision ID: 0004_certificates
Revises: 0003_valuation_alerts
Create Date: 2026-11-23 01:30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_certificates"
down_revision: str | None = "0003_valuation_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
-- One row per certificate version. The facts printed on it (`content`) are fixed in the transaction that
-- confirms the change; the PDF is rendered from them afterwards, stored once, and never replaced.
CREATE TABLE certificate (
    id uuid CONSTRAINT pk_certificate PRIMARY KEY,
    number text NOT NULL CONSTRAINT uq_certificate_number UNIQUE,
    pledge_id uuid NOT NULL CONSTRAINT fk_certificate_pledge_id_pledge REFERENCES pledge (id),
    version integer NOT NULL CONSTRAINT ck_certificate_version CHECK (version >= 1),
    status text NOT NULL CONSTRAINT ck_certificate_status CHECK (status IN ('valid', 'superseded', 'revoked')),
    instruction_id uuid NOT NULL CONSTRAINT fk_certificate_instruction_id_instruction REFERENCES instruction (id),
    issued_at timestamptz NOT NULL,
    status_changed_at timestamptz,
    credit_type_id smallint NOT NULL CONSTRAINT fk_certificate_credit_type_id_credit_type REFERENCES credit_type (id),
    quantity bigint NOT NULL CONSTRAINT ck_certificate_quantity CHECK (quantity > 0),
    verification_code text NOT NULL CONSTRAINT ck_certificate_code CHECK (verification_code ~ '^[0-9A-Z]{12}$'),
    content jsonb NOT NULL,
    pdf bytea,
    sha256 text,
    rendered_at timestamptz,
    CONSTRAINT uq_certificate_version UNIQUE (pledge_id, version),
    CONSTRAINT ck_certificate_status_time CHECK ((status = 'valid') = (status_changed_at IS NULL)),
    -- The digest is the digest of the stored bytes: the database computes it to check.
    CONSTRAINT ck_certificate_digest CHECK (
        (pdf IS NULL AND sha256 IS NULL AND rendered_at IS NULL)
        OR (sha256 = encode(sha256(pdf), 'hex') AND rendered_at IS NOT NULL))
);
CREATE UNIQUE INDEX uq_certificate_one_valid ON certificate (pledge_id) WHERE status = 'valid';
CREATE INDEX ix_certificate_unrendered ON certificate (issued_at) WHERE pdf IS NULL;

-- What a certificate says never changes; its PDF is written once; its status only moves forward.
CREATE FUNCTION registry_certificate_rules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.number, NEW.pledge_id, NEW.version, NEW.instruction_id, NEW.issued_at, NEW.credit_type_id,
        NEW.quantity, NEW.verification_code, NEW.content)
       IS DISTINCT FROM
       (OLD.id, OLD.number, OLD.pledge_id, OLD.version, OLD.instruction_id, OLD.issued_at, OLD.credit_type_id,
        OLD.quantity, OLD.verification_code, OLD.content) THEN
        RAISE EXCEPTION 'certificate %: what a certificate says cannot change', OLD.number
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.pdf IS NOT NULL AND (NEW.pdf, NEW.sha256, NEW.rendered_at) IS DISTINCT FROM (OLD.pdf, OLD.sha256, OLD.rendered_at) THEN
        RAISE EXCEPTION 'certificate %: the issued PDF cannot be replaced', OLD.number
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (OLD.status = 'valid' AND NEW.status IN ('superseded', 'revoked')) THEN
        RAISE EXCEPTION 'certificate %: % cannot become %', OLD.number, OLD.status, NEW.status
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.status = OLD.status AND NEW.status_changed_at IS DISTINCT FROM OLD.status_changed_at THEN
        RAISE EXCEPTION 'certificate %: status time without a status change', OLD.number
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER certificate_rules BEFORE UPDATE ON certificate
    FOR EACH ROW EXECUTE FUNCTION registry_certificate_rules();
CREATE TRIGGER certificate_no_delete BEFORE DELETE ON certificate
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();
CREATE TRIGGER certificate_no_truncate BEFORE TRUNCATE ON certificate
    FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change();

-- Failure counters for throttled public endpoints (certificate verification; sign-in later), shared by
-- every app process. One row per (scope, client); a quiet window resets it.
CREATE TABLE rate_limit (
    scope text NOT NULL,
    client text NOT NULL,
    failures integer NOT NULL,
    window_start timestamptz NOT NULL,
    blocked_until timestamptz,
    CONSTRAINT pk_rate_limit PRIMARY KEY (scope, client)
);
"""

DOWNGRADE = """
DROP TABLE rate_limit;
DROP TABLE certificate;
DROP FUNCTION registry_certificate_rules();
"""


def _run(sql: str) -> None:
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
