"""What every table shares: constraint names that errors can be mapped from, tz-aware timestamps."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Column, DateTime, Dialect, Text, TypeDecorator
from sqlmodel import SQLModel

# Stable constraint names, so a violation can be mapped to a precise domain error.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def timestamptz(*, nullable: bool = False, **kwargs: Any) -> Any:
    return Column(DateTime(timezone=True), nullable=nullable, **kwargs)


E = TypeVar("E", bound=StrEnum)


class TextEnum(TypeDecorator[E]):
    """A `StrEnum` kept in a `text` column (the migrations' type; their CHECK holds the vocabulary):
    members go in as their values and come back as members."""

    impl = Text
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return value.value if isinstance(value, self.enum) else value

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


def one_of(column: str, values: Iterable[str]) -> str:
    """`column IN ('a', 'b')`: the SQL of a CHECK that holds a vocabulary, in the migration's order."""
    words = [str(v) for v in values]
    assert all("'" not in w for w in words), words  # vocabularies are plain words
    quoted = ", ".join(f"'{w}'" for w in words)
    return f"{column} IN ({quoted})"


# A row's serials as a box (migration 0018's registry_box): what the overlap indexes of blocks and events
# are built on, GiST's geometric operator class costing about half of a range's per entry.
BLOCK_BOX = "registry_box(credit_type_id, serial_start, serial_end)"
