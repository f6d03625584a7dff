"""The rate-limit counters, equal to what migration 0004 creates (tests/test_schema.py); the service
counts in SQL (registry/ratelimit/service.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer, PrimaryKeyConstraint, Text
from sqlmodel import Field, SQLModel

from registry.base import timestamptz


class RateLimit(SQLModel, table=True):
    """Failures of one client at one throttled endpoint, shared by every app process; a quiet window
    resets them."""

    __tablename__ = "rate_limit"
    __table_args__ = (PrimaryKeyConstraint("scope", "client"),)

    scope: str = Field(sa_column=Column(Text, nullable=False))
    client: str = Field(sa_column=Column(Text, nullable=False))
    failures: int = Field(sa_column=Column(Integer, nullable=False))
    window_start: datetime = Field(sa_column=timestamptz())
    blocked_until: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
