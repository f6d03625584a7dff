"""What every table shares: constraint names that errors can be mapped from, tz-aware timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime
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


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: every timestamp in the registry carries its time zone")
    return value
