"""What Alembic compares between the models (SQLModel.metadata) and a migrated database: the options
that migrations/env.py gives `alembic check` and `alembic revision --autogenerate`, and that
tests/test_schema.py uses, so that an operator's check and the test agree.

The migrations are hand-written SQL; the models are held equal to them. Alembic compares tables,
columns (type, nullability, server default, identity), primary keys, foreign keys, unique constraints,
indexes (name, columns, uniqueness) and, with the plugin named below, CHECK constraints by name. It does
not compare triggers, functions, sequences, grants, exclusion constraints, index predicates or access
methods, nor the text of CHECKs: tests/test_schema.py compares those (but triggers, functions and
grants, which only the migrations hold) by creating the models in a scratch schema and asking PostgreSQL
to describe both."""

from __future__ import annotations

from typing import Any

COMPARE: dict[str, Any] = {
    "compare_type": True,
    # PostgreSQL's defaults here are constants and now(): Alembic compares them on the server itself.
    "compare_server_default": True,
    "autogenerate_plugins": ["alembic.autogenerate.*", "alembic.ext.checkconstraint_byname"],
}
