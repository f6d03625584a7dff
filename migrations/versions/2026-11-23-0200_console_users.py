"""People who use the web console, and their sign-in sessions.

Revision ID: 0005_console_users
Revises: 0004_certificates
Create Date: 2026-11-23 02:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_console_users"
down_revision: str | None = "0004_certificates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
-- A person acting for a party in the console. The username is the operator name that the four-eyes rule
-- and the audit trail record, so it is unique and never reused (users are disabled, not deleted).
CREATE TABLE console_user (
    id uuid CONSTRAINT pk_console_user PRIMARY KEY,
    username text NOT NULL CONSTRAINT uq_console_user_username UNIQUE
        CONSTRAINT ck_console_user_username CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    display_name text NOT NULL,
    party_id uuid NOT NULL CONSTRAINT fk_console_user_party_id_party REFERENCES party (id),
    role text NOT NULL CONSTRAINT ck_console_user_role CHECK (role IN ('exchange', 'bank', 'holder', 'auditor')),
    password_hash text NOT NULL CONSTRAINT ck_console_user_argon2 CHECK (password_hash LIKE '$argon2id$%'),
    created_at timestamptz NOT NULL,
    disabled_at timestamptz
);
CREATE TRIGGER console_user_no_delete BEFORE DELETE ON console_user
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change();

-- The cookie carries a random token; only its SHA-256 is kept. Ended sessions stay for the record.
CREATE TABLE console_session (
    id uuid CONSTRAINT pk_console_session PRIMARY KEY,
    token_digest bytea NOT NULL CONSTRAINT uq_console_session_token UNIQUE,
    user_id uuid NOT NULL CONSTRAINT fk_console_session_user_id_console_user REFERENCES console_user (id),
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    ended_at timestamptz
);
CREATE INDEX ix_console_session_user ON console_session (user_id, created_at);
"""

DOWNGRADE = """
DROP TABLE console_session;
DROP TABLE console_user;
"""


def _run(sql: str) -> None:
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
