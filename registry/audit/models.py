"""The audit event table. UPDATE, DELETE and TRUNCATE are refused by triggers (see the migration)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Identity,
    Index,
    LargeBinary,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from registry.base import BLOCK_BOX, TextEnum, timestamptz
from registry.principal import Role


class EventKind(StrEnum):
    ISSUE = "issue"
    TRANSFER = "transfer"
    RETIRE = "retire"
    HOLD = "hold"
    RELEASE_HOLD = "release_hold"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    DISPOSE = "dispose"


class AuditEvent(SQLModel, table=True):
    """One block changing hands or state: `from_*` before, `to_*` after.

    Events form one hash chain per account (`account_id`, `seq`): the account the units leave or
    change in, or for an issuance the account they land in."""

    __tablename__ = "audit_event"
    __table_args__ = (
        UniqueConstraint("account_id", "seq"),
        CheckConstraint("seq >= 1", name="seq"),
        CheckConstraint("length(prev_hash) = 32", name="prev_hash"),
        CheckConstraint("length(hash) = 32", name="hash"),
        Index("ix_audit_event_span", text(BLOCK_BOX), postgresql_using="gist"),  # a unit's history
        # The reports read a pledge's events (migration 0007).
        Index(
            "ix_audit_event_to_pledge",
            "to_pledge_id",
            "occurred_at",
            postgresql_where=text("to_pledge_id IS NOT NULL"),
        ),
        Index(
            "ix_audit_event_from_pledge",
            "from_pledge_id",
            "occurred_at",
            postgresql_where=text("from_pledge_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    account_id: UUID = Field(nullable=False)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: EventKind = Field(sa_column=Column(TextEnum(EventKind), nullable=False))
    credit_type_id: int = Field(sa_column=Column(SmallInteger, nullable=False))
    batch_id: UUID = Field(nullable=False)
    serial_start: int = Field(sa_column=Column(BigInteger, nullable=False))
    serial_end: int = Field(sa_column=Column(BigInteger, nullable=False))
    from_account_id: UUID | None = None
    # A block's status (ledger's BlockStatus; the ledger sits above the audit trail, so plain text here).
    from_status: str | None = Field(default=None, sa_column=Column(Text))
    from_pledge_id: UUID | None = None
    to_account_id: UUID | None = None
    to_status: str | None = Field(default=None, sa_column=Column(Text))
    to_pledge_id: UUID | None = None
    actor_role: Role = Field(sa_column=Column(TextEnum(Role), nullable=False))
    actor_party_id: UUID | None = None
    actor_key_id: UUID | None = None
    operator: str | None = Field(default=None, sa_column=Column(Text))
    on_behalf_of: UUID | None = None
    request_id: str | None = Field(default=None, sa_column=Column(Text))
    instruction_id: UUID | None = None
    reason: str | None = Field(default=None, sa_column=Column(Text))
    occurred_at: datetime = Field(sa_column=timestamptz())
    prev_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
