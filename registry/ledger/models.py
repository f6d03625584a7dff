"""Ledger tables, equal to what migrations 0001-0002, 0010 and 0015 create (tests/test_schema.py holds them
equal). The triggers that enforce conservation and the block transitions live only in the migration;
docs/architecture.md lists them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Computed,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    Sequence,
    SmallInteger,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, INT8RANGE, ExcludeConstraint, Range
from sqlmodel import Field, SQLModel

from registry.base import BLOCK_BOX, TextEnum, one_of, timestamptz

# Serials are kept per credit type; a block's `span` packs (credit type, serial) into one bigint range
# so that a plain GiST exclusion constraint (no btree_gist needed) forbids overlaps within a type. (Not
# SP-GiST: serials are allocated in increasing order, and a range quad tree fed sequential ranges
# degenerates — its inserts grew from 0.2 to 0.8 ms a block between 50,000 and 200,000 blocks, GiST's
# stayed at 0.1 ms.)
SERIAL_BITS = 40
SERIAL_MAX = (1 << SERIAL_BITS) - 1
# A credit type's code, and the years an issuance's vintage may name (the API's schemas check the same).
CREDIT_TYPE_CODE = r"^[A-Z][A-Z0-9_-]{1,15}$"
VINTAGE_MIN, VINTAGE_MAX = 1990, 2100


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


# Account numbers are drawn from it (registry/ledger/repository.py).
ACCOUNT_NUMBER_SEQ = Sequence("account_number_seq", metadata=SQLModel.metadata)


class CreditType(SQLModel, table=True):
    __tablename__ = "credit_type"
    __table_args__ = (
        CheckConstraint(f"code ~ '{CREDIT_TYPE_CODE}'", name="code_format"),
        CheckConstraint(f"next_serial BETWEEN 1 AND {SERIAL_MAX + 1}", name="next_serial"),
    )

    id: int | None = Field(default=None, sa_column=Column(SmallInteger, Identity(), primary_key=True))
    code: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    unit: str = Field(default="tCO2e", sa_column=Column(Text, nullable=False, server_default="tCO2e"))
    next_serial: int = Field(
        default=1, sa_column=Column(BigInteger, nullable=False, server_default=text("1"))
    )
    created_at: datetime = Field(sa_column=timestamptz(server_default=func.now()))


class Party(SQLModel, table=True):
    __tablename__ = "party"
    __table_args__ = (CheckConstraint(one_of("kind", PartyKind), name="kind"),)

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    name: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    kind: PartyKind = Field(sa_column=Column(TextEnum(PartyKind), nullable=False))
    credit_code: str | None = Field(default=None, sa_column=Column(Text, nullable=True, unique=True))
    created_at: datetime = Field(sa_column=timestamptz())


class Account(SQLModel, table=True):
    __tablename__ = "account"
    __table_args__ = (
        CheckConstraint(one_of("status", AccountStatus), name="status"),
        CheckConstraint("(audit_seq = 0) = (audit_head IS NULL)", name="audit_head"),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    number: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    party_id: UUID = Field(sa_column=Column(ForeignKey("party.id"), nullable=False, index=True))
    status: AccountStatus = Field(
        default=AccountStatus.ACTIVE,
        sa_column=Column(TextEnum(AccountStatus), nullable=False, server_default=AccountStatus.ACTIVE.value),
    )
    created_at: datetime = Field(sa_column=timestamptz())
    # Head of this account's audit hash chain; the row lock that guards the account's blocks guards it too.
    audit_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0")))
    audit_head: bytes | None = Field(default=None, sa_column=Column(LargeBinary))


# The span of serials [s, e] of credit type ct, as the migration's registry_span(ct, s, e) packs it.
_SPAN = "registry_span(credit_type_id, serial_start, serial_end)"


class Issuance(SQLModel, table=True):
    """An issuance batch: a contiguous serial range of one credit type, immutable once written."""

    __tablename__ = "issuance"
    __table_args__ = (
        CheckConstraint(f"vintage BETWEEN {VINTAGE_MIN} AND {VINTAGE_MAX}", name="vintage"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            f"serial_start >= 1 AND serial_end <= {SERIAL_MAX} AND serial_end - serial_start + 1 = quantity",
            name="serial_range",
        ),
        ExcludeConstraint((text(_SPAN), "&&"), name="ex_issuance_no_overlap", using="gist"),
    )

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
    __table_args__ = (
        CheckConstraint(one_of("status", BlockStatus), name="status"),
        CheckConstraint(
            f"serial_start >= 1 AND serial_start <= serial_end AND serial_end <= {SERIAL_MAX}",
            name="serial_range",
        ),
        CheckConstraint(
            f"({one_of('status', (BlockStatus.HELD, BlockStatus.FROZEN))}) = (pledge_id IS NOT NULL)",
            name="pledge_named",
        ),
        # Checked at commit, like the migration says: one statement may shrink a block and insert its rest.
        ExcludeConstraint(
            (text(BLOCK_BOX), "&&"),
            name="ex_holding_no_overlap",
            using="gist",
            deferrable=True,
            initially="DEFERRED",
        ),
        Index("ix_holding_account", "account_id", "credit_type_id", "status", "serial_start"),
        Index(
            "ix_holding_pledge_id",
            "pledge_id",
            "credit_type_id",
            "serial_start",
            postgresql_where=text("pledge_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    credit_type_id: int = Field(sa_column=Column(SmallInteger, ForeignKey("credit_type.id"), nullable=False))
    batch_id: UUID = Field(sa_column=Column(ForeignKey("issuance.id"), nullable=False, index=True))
    serial_start: int = Field(sa_column=Column(BigInteger, nullable=False))
    serial_end: int = Field(sa_column=Column(BigInteger, nullable=False))
    # Generated columns are nullable in the database (no NOT NULL): their inputs never are.
    quantity: int | None = Field(
        default=None, sa_column=Column(BigInteger, Computed("serial_end - serial_start + 1", persisted=True))
    )
    account_id: UUID = Field(sa_column=Column(ForeignKey("account.id"), nullable=False))
    status: BlockStatus = Field(sa_column=Column(TextEnum(BlockStatus), nullable=False))
    pledge_id: UUID | None = Field(default=None, sa_column=Column(ForeignKey("pledge.id")))
    span: Range[int] | None = Field(
        default=None, sa_column=Column(INT8RANGE, Computed(_SPAN, persisted=True))
    )


class HoldingPendingCheck(SQLModel, table=True):
    """What a statement on `holding` left to check at commit (migration 0015): the spans it replaced, to be
    still covered, and the blocks it wrote, to lie inside their batches. Written and removed only by the
    triggers (`holding_conserved`); empty outside the transaction that wrote it; the app's role has no
    privilege on it."""

    __tablename__ = "holding_pending_check"

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    old_spans: list[Range[int]] = Field(sa_column=Column(ARRAY(INT8RANGE), nullable=False))
    new_batches: list[UUID] = Field(sa_column=Column(ARRAY(Uuid), nullable=False))
    new_spans: list[Range[int]] = Field(sa_column=Column(ARRAY(INT8RANGE), nullable=False))


class ProjectType(SQLModel, table=True):
    """The names of a project type code (issuances name theirs by code; unknown codes show as they are)."""

    __tablename__ = "project_type"

    code: str = Field(sa_column=Column(Text, primary_key=True))
    name_zh: str = Field(sa_column=Column(Text, nullable=False))
    name_en: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=timestamptz(server_default=func.now()))
