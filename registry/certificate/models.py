"""The certificate tables, equal to what migrations 0004 and 0009 create (tests/test_schema.py); a
certificate's one-way rules (content fixed, PDF written once, status forward only) are triggers there."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from registry.base import TextEnum, one_of, timestamptz


class CertificateStatus(StrEnum):
    VALID = "valid"  # the current version of an active pledge
    SUPERSEDED = "superseded"  # a later version replaced it (top-up, partial release or disposal)
    REVOKED = "revoked"  # the pledge ended (released or disposed)


class Certificate(SQLModel, table=True):
    __tablename__ = "certificate"
    __table_args__ = (
        CheckConstraint("version >= 1", name="version"),
        CheckConstraint(one_of("status", CertificateStatus), name="status"),
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("verification_code ~ '^[0-9A-Z]{12}$'", name="code"),
        UniqueConstraint("pledge_id", "version", name="uq_certificate_version"),
        CheckConstraint(
            f"(status = '{CertificateStatus.VALID}') = (status_changed_at IS NULL)", name="status_time"
        ),
        # The digest is the digest of the stored bytes: the database computes it to check.
        CheckConstraint(
            "(pdf IS NULL AND sha256 IS NULL AND rendered_at IS NULL)"
            " OR (sha256 = encode(sha256(pdf), 'hex') AND rendered_at IS NOT NULL)",
            name="digest",
        ),
        Index(
            "uq_certificate_one_valid",
            "pledge_id",
            unique=True,
            postgresql_where=text(f"status = '{CertificateStatus.VALID}'"),
        ),
        Index("ix_certificate_unrendered", "issued_at", postgresql_where=text("pdf IS NULL")),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    number: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    pledge_id: UUID = Field(sa_column=Column(ForeignKey("pledge.id"), nullable=False))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    status: CertificateStatus = Field(sa_column=Column(TextEnum(CertificateStatus), nullable=False))
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


class CertificateRendering(SQLModel, table=True):
    """A certificate whose PDF failed to render: the sweep tries the others first and gives up after a few
    failures (a download still renders it on demand)."""

    __tablename__ = "certificate_rendering"
    __table_args__ = (CheckConstraint("failures > 0", name="failures"),)

    certificate_id: UUID = Field(sa_column=Column(ForeignKey("certificate.id"), primary_key=True))
    failures: int = Field(sa_column=Column(Integer, nullable=False))
    last_failed_at: datetime = Field(sa_column=timestamptz())
    last_error: str = Field(sa_column=Column(Text, nullable=False))
