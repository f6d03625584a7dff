"""What Alembic compares between the models (SQLModel.metadata) and a migrated database: the options
migrations/env.py gives `alembic check` (and `alembic revision --autogenerate`) and tests/test_schema.py
uses, so that an operator's check and the test agree.

The migrations are hand-written SQL; the models are held equal to them. With these options Alembic
compares tables, columns (type, nullability, server default, identity), primary and foreign keys, unique
constraints, indexes (name, columns, uniqueness) and CHECK constraints by name. Nothing is excluded: every
object Alembic reflects has its model. What Alembic does not look at (a CHECK's text, an index's WHERE and
access method, exclusion constraints, generated expressions, sequences) tests/test_schema.py compares
through PostgreSQL's own description of both schemas. Triggers, functions and grants exist only in the
migrations and are compared by neither."""

from __future__ import annotations

from typing import Any

COMPARE: dict[str, Any] = {
    "compare_type": True,
    # PostgreSQL's defaults here are constants and now(): Alembic compares them on the server itself.
    "compare_server_default": True,
    "autogenerate_plugins": ["alembic.autogenerate.*", "alembic.ext.checkconstraint_byname"],
}
