"""The certificate table; its one-way rules (content fixed, PDF written once, status forward only) are
triggers in migration 0004."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, LargeBinary, SmallInteger, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from registry.base import timestamptz


class CertificateStatus(StrEnum):
    VALID = "valid"  # the current version of an active pledge
    SUPERSEDED = "superseded"  # a later version replaced it (top-up, partial release or disposal)
    REVOKED = "revoked"  # the pledge ended (released or disposed)


class Certificate(SQLModel, table=True):
    __tablename__ = "certificate"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    number: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    pledge_id: UUID = Field(sa_column=Column(ForeignKey("pledge.id"), nullable=False))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    status: str = Field(sa_column=Column(Text, nullable=False))
    instruction_id: UUID = Field(sa_column=Column(ForeignKey("instruction.id"), nullable=False))
    issued_at: datetime = Field(sa_column=timestamptz())
    status_changed_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    credit_type_id: int = Field(sa_column=Column(SmallInteger, ForeignKey("credit_type.id"), nullable=False))
    quantity: int = Field(sa_column=Column(BigInteger, nullable=False))
    verification_code: str = Field(sa_column=Column(Text, nullable=False))
    content: Any = Field(sa_column=Column(JSONB, nullable=False))
    pdf: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    sha256: str | None = Field(default=None, sa_column=Column(Text))
    rendered_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
