from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Column, Integer, LargeBinary, PrimaryKeyConstraint, Text
from sqlmodel import Field, SQLModel

from registry.base import timestamptz


class IdempotencyRecord(SQLModel, table=True):
    """Written in the same transaction as the work it guards: it exists iff that work committed."""

    __tablename__ = "idempotency_record"
    __table_args__ = (PrimaryKeyConstraint("key_id", "key"),)

    key_id: UUID  # the API key that made the request: a key string is that key's own
    party_id: UUID
    key: str = Field(sa_column=Column(Text, nullable=False))
    fingerprint: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status_code: int | None = Field(default=None, sa_column=Column(Integer))
    response: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    created_at: datetime = Field(sa_column=timestamptz(index=True))
