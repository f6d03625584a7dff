"""The audit event table. UPDATE, DELETE and TRUNCATE are refused by triggers (see the migration)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import BigInteger, Column, Computed, LargeBinary, SmallInteger, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import INT8RANGE
from sqlmodel import Field, SQLModel

from registry.base import timestamptz


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
    __table_args__ = (UniqueConstraint("account_id", "seq"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    account_id: UUID = Field(nullable=False)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    credit_type_id: int = Field(sa_column=Column(SmallInteger, nullable=False))
    batch_id: UUID = Field(nullable=False)
    serial_start: int = Field(sa_column=Column(BigInteger, nullable=False))
    serial_end: int = Field(sa_column=Column(BigInteger, nullable=False))
    from_account_id: UUID | None = None
    from_status: str | None = None
    from_pledge_id: UUID | None = None
    to_account_id: UUID | None = None
    to_status: str | None = None
    to_pledge_id: UUID | None = None
    actor_role: str = Field(sa_column=Column(Text, nullable=False))
    actor_party_id: UUID | None = None
    actor_key_id: UUID | None = None
    operator: str | None = None
    on_behalf_of: UUID | None = None
    request_id: str | None = None
    instruction_id: UUID | None = None
    reason: str | None = None
    occurred_at: datetime = Field(sa_column=timestamptz())
    prev_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    span: str | None = Field(
        default=None,
        sa_column=Column(
            INT8RANGE, Computed("registry_span(credit_type_id, serial_start, serial_end)"), nullable=False
        ),
    )
