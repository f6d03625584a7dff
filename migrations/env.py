"""Alembic environment: the URL comes from the caller (registry.db.migrate) or from the settings."""

from __future__ import annotations

import warnings

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import SAWarning
from sqlmodel import SQLModel

import registry.models  # noqa: F401  (registers every table on the metadata)
from registry.config import get_settings
from registry.db import database_url
from registry.schema import COMPARE

config = context.config
target_metadata = SQLModel.metadata

# Reflecting a NOT VALID CHECK, SQLAlchemy 2.1 and Alembic pass its flag on as an unprefixed keyword and
# warn; the constraint is still compared (by name). The same filter is on tests/test_schema.py.
warnings.filterwarnings("ignore", "Can't validate argument", SAWarning)


def _url() -> str:
    return config.attributes.get("database_url") or database_url(get_settings())


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # COMPARE: what `alembic check` compares, the same as tests/test_schema.py (registry/schema.py).
        context.configure(connection=connection, target_metadata=target_metadata, **COMPARE)
        with context.begin_transaction():
            # Two processes starting at once must not both migrate; all migrations run in one transaction.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727200001)")
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
