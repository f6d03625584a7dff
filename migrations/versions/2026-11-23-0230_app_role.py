"""The application's own database role: it may write what the registry writes and nothing more.

Revision ID: 0006_app_role
Revises: 0005_console_users
Create Date: 2026-11-23 02:30

The app connects as `registry_app` (or as a login role granted it); migrations run as the owner. The
role owns nothing, so it cannot drop or alter tables or switch their triggers off, and it holds no
UPDATE, DELETE or TRUNCATE on history: even a statement an attacker managed to inject is refused by the
privilege system before any trigger is asked. Where the migrating user may not create roles (some
managed databases), the role is left to the operator (docs/operations.md) and the grants are skipped.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_app_role"
down_revision: str | None = "0005_console_users"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written once, never changed or removed.
HISTORY = ("audit_event", "valuation", "issuance")
# Changed in place, never removed: the record of who did what.
KEPT = ("party", "account", "pledge", "instruction", "certificate", "console_user", "api_key", "alert",
        "webhook_delivery", "job_run", "credit_type")  # fmt: skip

UPGRADE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'registry_app') THEN
        BEGIN
            -- LOGIN so that the embedded server (local socket, trust) can connect as it; it has no password,
            -- so elsewhere it logs in only as pg_hba.conf and the operator allow.
            CREATE ROLE registry_app LOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            -- another migration (of another database on the same server) made it meanwhile: roles belong
            -- to the whole server, and two concurrent CREATE ROLEs collide on pg_authid's unique index
            NULL;
        WHEN insufficient_privilege THEN
            RAISE NOTICE 'cannot create role registry_app: create it, then run the grants of migration 0006';
            RETURN;
        END;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO registry_app', current_database());
    GRANT USAGE ON SCHEMA public TO registry_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO registry_app;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO registry_app;
    REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM registry_app;
    REVOKE UPDATE, DELETE ON {", ".join(HISTORY)} FROM registry_app;
    REVOKE DELETE ON {", ".join(KEPT)} FROM registry_app;
    -- A certificate's status moves and its PDF is stored once; nothing else of it may change.
    REVOKE UPDATE ON certificate FROM registry_app;
    GRANT UPDATE (status, status_changed_at, pdf, sha256, rendered_at) ON certificate TO registry_app;
    -- Tables made by later migrations get the same default; each history table revokes as above.
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO registry_app;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO registry_app;
END $$;
"""

DOWNGRADE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'registry_app') THEN
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM registry_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM registry_app;
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM registry_app;
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM registry_app;
        REVOKE ALL ON SCHEMA public FROM registry_app;
        EXECUTE format('REVOKE ALL ON DATABASE %I FROM registry_app', current_database());
    END IF;
END $$;
"""


def _run(sql: str) -> None:
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
