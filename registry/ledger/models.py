"""Ledger tables. The invariants that the database enforces are created in the migration
(exclusion constraint, conservation trigger, transition trigger); docs/architecture.md lists them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from sqlalchemy import BigInteger, Column, Computed, Enum, ForeignKey, SmallInteger, Text
from sqlalchemy.dialects.postgresql import INT8RANGE
from sqlmodel import Field, SQLModel

from registry.base import timestamptz

# Serials are kept per credit type; a block's `span` packs (credit type, serial) into one bigint range
# so that a plain GiST exclusion constraint (no btree_gist needed) forbids overlaps within a type.
SERIAL_BITS = 40
SERIAL_MAX = (1 << SERIAL_BITS) - 1


class PartyKind(StrEnum):
    BANK = "bank"
    ENTERPRISE = "enterprise"
    EXCHANGE = "exchange"
    AUDITOR = "auditor"


class BlockStatus(StrEnum):
    AVAILABLE = "available"
    HELD = "held"  # asked for by a pending pledge request
    FROZEN = "frozen"  # pledged: registration confirmed
    RETIRED = "retired"  # cancelled for an offset claim; kept so that serials are never reused


class AccountStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


def _enum(e: type[StrEnum], name: str) -> Enum:
    return Enum(
        e,
        name=name,
        values_callable=lambda cls: [m.value for m in cls],
        native_enum=False,
        create_constraint=False,
        length=16,
    )


class CreditType(SQLModel, table=True):
    __tablename__ = "credit_type"

    id: int | None = Field(default=None, sa_column=Column(SmallInteger, primary_key=True, autoincrement=True))
    code: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    unit: str = Field(default="tCO2e", sa_column=Column(Text, nullable=False))
    next_serial: int = Field(default=1, sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(sa_column=timestamptz())


class Party(SQLModel, table=True):
    __tablename__ = "party"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    name: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    kind: PartyKind = Field(sa_column=Column(_enum(PartyKind, "party_kind"), nullable=False))
    credit_code: str | None = Field(default=None, sa_column=Column(Text, nullable=True, unique=True))
    created_at: datetime = Field(sa_column=timestamptz())


class Account(SQLModel, table=True):
    __tablename__ = "account"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    number: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    party_id: UUID = Field(sa_column=Column(ForeignKey("party.id"), nullable=False, index=True))
    status: AccountStatus = Field(
        default=AccountStatus.ACTIVE, sa_column=Column(_enum(AccountStatus, "account_status"), nullable=False)
    )
    created_at: datetime = Field(sa_column=timestamptz())
    # Head of this account's audit hash chain; the row lock that guards the account's blocks guards it too.
    audit_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    audit_head: bytes | None = Field(default=None)


class Issuance(SQLModel, table=True):
    """An issuance batch: a contiguous serial range of one credit type, immutable once written."""

    __tablename__ = "issuance"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    credit_type_id: int = Field(sa_column=Column(SmallInteger, ForeignKey("credit_type.id"), nullable=False))
    project_code: str = Field(sa_column=Column(Text, nullable=False))
    project_type: str = Field(sa_column=Column(Text, nullable=False))
    vintage: int = Field(sa_column=Column(SmallInteger, nullable=False))
    quantity: int = Field(sa_column=Column(BigInteger, nullable=False))
    serial_start: int = Field(sa_column=Column(BigInteger, nullable=False))
    serial_end: int = Field(sa_column=Column(BigInteger, nullable=False))
    account_id: UUID = Field(sa_column=Column(ForeignKey("account.id"), nullable=False))
    issued_at: datetime = Field(sa_column=timestamptz())


class Holding(SQLModel, table=True):
    """A block: serials [serial_start, serial_end] of one batch, in one account, in one status."""

    __tablename__ = "holding"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    credit_type_id: int = Field(sa_column=Column(SmallInteger, ForeignKey("credit_type.id"), nullable=False))
    batch_id: UUID = Field(sa_column=Column(ForeignKey("issuance.id"), nullable=False, index=True))
    serial_start: int = Field(sa_column=Column(BigInteger, nullable=False))
    serial_end: int = Field(sa_column=Column(BigInteger, nullable=False))
    quantity: int | None = Field(
        default=None, sa_column=Column(BigInteger, Computed("serial_end - serial_start + 1"), nullable=False)
    )
    account_id: UUID = Field(sa_column=Column(ForeignKey("account.id"), nullable=False))
    status: BlockStatus = Field(sa_column=Column(_enum(BlockStatus, "block_status"), nullable=False))
    pledge_id: UUID | None = Field(default=None, index=True)
    span: str | None = Field(
        default=None,
        sa_column=Column(
            INT8RANGE, Computed("registry_span(credit_type_id, serial_start, serial_end)"), nullable=False
        ),
    )


class ProjectType(SQLModel, table=True):
    """The names of a project type code (issuances name theirs by code; unknown codes show as they are)."""

    __tablename__ = "project_type"

    code: str = Field(sa_column=Column(Text, primary_key=True))
    name_zh: str = Field(sa_column=Column(Text, nullable=False))
    name_en: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=timestamptz())
