"""Joint application, binding four eyes, one open pledge per loan, idempotency per API key, and the
decision trail.

Revision ID: 0008_joint_application
Revises: 0007_report_indexes
Create Date: 2026-12-01 20:00

- An instruction that puts a pledgor's units at stake (register, top-up) is asked by one party and
  consented by the other: `awaiting_consent` until then, `declined` if refused. `consent_party_id`
  names whose consent it waits for; nothing can ever change what an instruction asks.
- A disposal's reviewed terms (destination, price, proceeds) are kept on the instruction, and the
  database refuses a confirmed disposal whose applied terms are not its reviewed ones, or whose
  confirming operator is its reviewer.
- One open (pending or active) pledge per bank and loan contract.
- `pledge_event`: every decision on an instruction (asked, consented, declined, reviewed, confirmed,
  rejected, cancelled, expired), naming the person, in one hash chain per pledge whose head is kept in
  `pledge_chain`; append-only like `audit_event`.
- Idempotency records belong to the API key that made them (`key_id`), not to its party.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_joint_application"
down_revision: str | None = "0007_report_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "'\\x" + "00" * 32 + "'::bytea"

UPGRADE = f"""
-- Refuse to build the one-open-pledge rule over data that already breaks it: the operator must first close
-- (release, reject or cancel) all but one of each such pair; the message lists them.
DO $$
DECLARE dup text;
BEGIN
    SELECT string_agg(pledgee_party_id || ' ' || contract_no, ', ') INTO dup FROM (
        SELECT pledgee_party_id, contract_no FROM pledge WHERE status IN ('pending', 'active')
         GROUP BY 1, 2 HAVING count(*) > 1) d;
    IF dup IS NOT NULL THEN
        RAISE EXCEPTION 'loans with more than one open pledge (bank, contract): %', dup;
    END IF;
END $$;

ALTER TABLE pledge DROP CONSTRAINT ck_pledge_status;
ALTER TABLE pledge ADD CONSTRAINT ck_pledge_status CHECK (status IN
    ('pending', 'active', 'rejected', 'declined', 'cancelled', 'expired', 'released', 'disposed'));
ALTER TABLE pledge DROP CONSTRAINT ck_pledge_registered;
ALTER TABLE pledge ADD CONSTRAINT ck_pledge_registered CHECK (
    (status IN ('pending', 'rejected', 'declined', 'cancelled', 'expired')) = (registration_no IS NULL));
CREATE UNIQUE INDEX uq_pledge_open_loan ON pledge (pledgee_party_id, contract_no)
    WHERE status IN ('pending', 'active');

CREATE OR REPLACE FUNCTION pledge_closed_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('rejected', 'declined', 'cancelled', 'expired', 'released', 'disposed') THEN
        RAISE EXCEPTION 'pledge % is % and cannot change', OLD.id, OLD.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'pledge_closed_once';
    END IF;
    RETURN NEW;
END $$;

ALTER TABLE instruction DROP CONSTRAINT ck_instruction_status;
ALTER TABLE instruction ADD CONSTRAINT ck_instruction_status CHECK (status IN
    ('awaiting_consent', 'pending', 'confirmed', 'rejected', 'declined', 'cancelled', 'expired'));
ALTER TABLE instruction DROP CONSTRAINT ck_instruction_decided;
ALTER TABLE instruction ADD CONSTRAINT ck_instruction_decided
    CHECK ((status IN ('awaiting_consent', 'pending')) = (decided_at IS NULL));
ALTER TABLE instruction
    ADD COLUMN consent_party_id uuid CONSTRAINT fk_instruction_consent_party_id_party REFERENCES party (id),
    ADD COLUMN consented_by text,
    ADD COLUMN consented_by_key_id uuid,
    ADD COLUMN consented_at timestamptz,
    ADD COLUMN review_to_account_id uuid
        CONSTRAINT fk_instruction_review_to_account_id_account REFERENCES account (id),
    ADD COLUMN review_price numeric(18, 2) CONSTRAINT ck_instruction_review_price CHECK (review_price >= 0),
    ADD COLUMN review_proceeds numeric(18, 2)
        CONSTRAINT ck_instruction_review_proceeds CHECK (review_proceeds >= 0);
-- Waiting for a consent names whose; an instruction that needed one reached the exchange only with it.
ALTER TABLE instruction ADD CONSTRAINT ck_instruction_consent CHECK (
    (status <> 'awaiting_consent' OR consent_party_id IS NOT NULL)
    AND (consent_party_id IS NULL OR consented_at IS NOT NULL
         OR status IN ('awaiting_consent', 'declined', 'cancelled', 'expired')));
-- Four eyes binds the terms: a confirmed disposal applied exactly what another person reviewed. NOT VALID:
-- disposals confirmed before this migration kept no reviewed terms (decided rows never change again).
ALTER TABLE instruction ADD CONSTRAINT ck_instruction_four_eyes CHECK (
    type <> 'dispose' OR status <> 'confirmed' OR (
        reviewed_by IS NOT NULL AND decided_by IS DISTINCT FROM reviewed_by
        AND to_account_id IS NOT DISTINCT FROM review_to_account_id
        AND price IS NOT DISTINCT FROM review_price
        AND proceeds IS NOT DISTINCT FROM review_proceeds)) NOT VALID;
-- One open instruction per pledge, whether it waits for a consent or for the exchange.
DROP INDEX uq_instruction_one_pending;
CREATE UNIQUE INDEX uq_instruction_one_open ON instruction (pledge_id)
    WHERE status IN ('awaiting_consent', 'pending');
CREATE INDEX ix_instruction_consent ON instruction (consent_party_id, seq) WHERE status = 'awaiting_consent';

-- Every transition at most once, and only along the lifecycle: awaiting_consent -> pending | declined |
-- cancelled | expired; pending -> pending (a disposal's review) | confirmed | rejected | cancelled | expired.
CREATE OR REPLACE FUNCTION instruction_decided_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status NOT IN ('awaiting_consent', 'pending') THEN
        RAISE EXCEPTION 'instruction % is % and cannot change', OLD.id, OLD.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'instruction_decided_once';
    END IF;
    IF (OLD.status = 'awaiting_consent'
            AND NEW.status NOT IN ('awaiting_consent', 'pending', 'declined', 'cancelled', 'expired'))
       OR (OLD.status = 'pending' AND NEW.status IN ('awaiting_consent', 'declined')) THEN
        RAISE EXCEPTION 'instruction % cannot go from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'instruction_decided_once';
    END IF;
    IF NEW.id <> OLD.id OR NEW.pledge_id <> OLD.pledge_id OR NEW.type <> OLD.type
       OR NEW.seq <> OLD.seq OR NEW.requested_by_party_id <> OLD.requested_by_party_id
       OR NEW.created_at <> OLD.created_at
       OR NEW.quantity IS DISTINCT FROM OLD.quantity OR NEW.blocks IS DISTINCT FROM OLD.blocks
       OR NEW.reason IS DISTINCT FROM OLD.reason
       OR NEW.outstanding_principal IS DISTINCT FROM OLD.outstanding_principal
       OR NEW.consent_party_id IS DISTINCT FROM OLD.consent_party_id THEN
        RAISE EXCEPTION 'what an instruction asks cannot be edited'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'instruction_decided_once';
    END IF;
    IF OLD.consented_at IS NOT NULL AND (NEW.consented_at IS DISTINCT FROM OLD.consented_at
                                         OR NEW.consented_by IS DISTINCT FROM OLD.consented_by) THEN
        RAISE EXCEPTION 'a consent once given is not edited'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'instruction_decided_once';
    END IF;
    RETURN NEW;
END $$;

CREATE TABLE pledge_event (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk_pledge_event PRIMARY KEY,
    pledge_id uuid NOT NULL CONSTRAINT fk_pledge_event_pledge_id_pledge REFERENCES pledge (id),
    seq bigint NOT NULL,
    kind text NOT NULL CONSTRAINT ck_pledge_event_kind CHECK (kind IN
        ('ask', 'consent', 'decline', 'review', 'confirm', 'reject', 'cancel', 'expire')),
    instruction_id uuid NOT NULL CONSTRAINT fk_pledge_event_instruction_id_instruction REFERENCES instruction (id),
    actor_role text NOT NULL,
    actor_party_id uuid,
    actor_key_id uuid,
    operator text,
    request_id text,
    reason text,
    terms text,  -- the canonical JSON of what was decided (a disposal's reviewed terms), exactly as hashed
    occurred_at timestamptz NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL CONSTRAINT uq_pledge_event_hash UNIQUE,
    CONSTRAINT uq_pledge_event_seq UNIQUE (pledge_id, seq)
);
CREATE INDEX ix_pledge_event_instruction ON pledge_event (instruction_id);
CREATE TRIGGER pledge_event_no_update BEFORE UPDATE OR DELETE ON pledge_event
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();
CREATE TRIGGER pledge_event_no_truncate BEFORE TRUNCATE ON pledge_event
    FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change();

CREATE FUNCTION pledge_event_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq = 1 THEN
        IF NEW.prev_hash <> {GENESIS} THEN
            RAISE EXCEPTION 'the first event of a chain links to the genesis hash'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'pledge_event_links';
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM pledge_event
                       WHERE pledge_id = NEW.pledge_id AND seq = NEW.seq - 1 AND hash = NEW.prev_hash) THEN
        RAISE EXCEPTION 'event % of pledge % does not link to event %', NEW.seq, NEW.pledge_id, NEW.seq - 1
            USING ERRCODE = 'check_violation', CONSTRAINT = 'pledge_event_links';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER pledge_event_links BEFORE INSERT ON pledge_event
    FOR EACH ROW EXECUTE FUNCTION pledge_event_links();

-- The head of each pledge's decision chain: like account.audit_head, it shows events removed from the end.
CREATE TABLE pledge_chain (
    pledge_id uuid CONSTRAINT pk_pledge_chain PRIMARY KEY
        CONSTRAINT fk_pledge_chain_pledge_id_pledge REFERENCES pledge (id),
    seq bigint NOT NULL CONSTRAINT ck_pledge_chain_seq CHECK (seq > 0),
    head bytea NOT NULL
);
CREATE TRIGGER pledge_chain_no_delete BEFORE DELETE ON pledge_chain
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();

-- Idempotency records belong to the API key that made them: another key (another operator) sending the
-- same key string makes a new request. Records made before this carry their party's id instead (unique as
-- the old key was, and never an API key's id), so they replay to nobody and expire by their TTL.
ALTER TABLE idempotency_record ADD COLUMN key_id uuid;
UPDATE idempotency_record SET key_id = party_id;
ALTER TABLE idempotency_record ALTER COLUMN key_id SET NOT NULL;
ALTER TABLE idempotency_record DROP CONSTRAINT pk_idempotency_record;
ALTER TABLE idempotency_record ADD CONSTRAINT pk_idempotency_record PRIMARY KEY (key_id, key);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'registry_app') THEN
        GRANT SELECT, INSERT ON pledge_event TO registry_app;
        REVOKE UPDATE, DELETE, TRUNCATE ON pledge_event FROM registry_app;
        GRANT SELECT, INSERT, UPDATE ON pledge_chain TO registry_app;
        REVOKE DELETE, TRUNCATE ON pledge_chain FROM registry_app;
    END IF;
END $$;
"""

DOWNGRADE = """
ALTER TABLE idempotency_record DROP CONSTRAINT pk_idempotency_record;
ALTER TABLE idempotency_record DROP COLUMN key_id;
ALTER TABLE idempotency_record ADD CONSTRAINT pk_idempotency_record PRIMARY KEY (party_id, key);
DROP TABLE pledge_chain, pledge_event;
DROP FUNCTION pledge_event_links;
DROP INDEX uq_instruction_one_open, ix_instruction_consent, uq_pledge_open_loan;
CREATE UNIQUE INDEX uq_instruction_one_pending ON instruction (pledge_id) WHERE status = 'pending';
ALTER TABLE instruction DROP CONSTRAINT ck_instruction_four_eyes, DROP CONSTRAINT ck_instruction_consent,
    DROP COLUMN consent_party_id, DROP COLUMN consented_by, DROP COLUMN consented_by_key_id,
    DROP COLUMN consented_at, DROP COLUMN review_to_account_id, DROP COLUMN review_price,
    DROP COLUMN review_proceeds;
"""


def _run(sql: str) -> None:
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
