"""Pledge and instruction tables; their one-way rules are triggers in migration 0002."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Identity,
    LargeBinary,
    Numeric,
    SmallInteger,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from registry.base import timestamptz


class Pledge(SQLModel, table=True):
    __tablename__ = "pledge"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    status: str = Field(sa_column=Column(Text, nullable=False))
    registration_no: str | None = Field(default=None, sa_column=Column(Text, unique=True))
    pledgee_party_id: UUID = Field(sa_column=Column(ForeignKey("party.id"), nullable=False))
    pledgor_account_id: UUID = Field(sa_column=Column(ForeignKey("account.id"), nullable=False))
    pledgor_party_id: UUID = Field(sa_column=Column(ForeignKey("party.id"), nullable=False))
    borrower_party_id: UUID = Field(sa_column=Column(ForeignKey("party.id"), nullable=False))
    contract_no: str = Field(sa_column=Column(Text, nullable=False))
    principal: Decimal = Field(sa_column=Column(Numeric(18, 2), nullable=False))
    outstanding_principal: Decimal = Field(sa_column=Column(Numeric(18, 2), nullable=False))
    currency: str = Field(default="CNY", sa_column=Column(Text, nullable=False))
    start_date: date = Field(sa_column=Column(Date, nullable=False))
    maturity_date: date = Field(sa_column=Column(Date, nullable=False))
    credit_type_id: int = Field(sa_column=Column(SmallInteger, ForeignKey("credit_type.id"), nullable=False))
    max_pledge_rate: Decimal = Field(sa_column=Column(Numeric(7, 4), nullable=False))
    warning_ratio: Decimal = Field(sa_column=Column(Numeric(7, 4), nullable=False))
    disposal_ratio: Decimal = Field(sa_column=Column(Numeric(7, 4), nullable=False))
    valuation_method: str = Field(sa_column=Column(Text, nullable=False))
    haircut: Decimal = Field(default=Decimal(0), sa_column=Column(Numeric(5, 4), nullable=False))
    pboc_registration_no: str | None = Field(default=None, sa_column=Column(Text))
    bank_ref: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=timestamptz())
    hold_expires_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    confirmed_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))


class Instruction(SQLModel, table=True):
    __tablename__ = "instruction"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=True), unique=True))
    pledge_id: UUID = Field(sa_column=Column(ForeignKey("pledge.id"), nullable=False))
    type: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(sa_column=Column(Text, nullable=False))
    quantity: int | None = Field(default=None, sa_column=Column(BigInteger))
    blocks: Any = Field(default=None, sa_column=Column(JSONB))
    outstanding_principal: Decimal | None = Field(default=None, sa_column=Column(Numeric(18, 2)))
    to_account_id: UUID | None = Field(default=None, sa_column=Column(ForeignKey("account.id")))
    price: Decimal | None = Field(default=None, sa_column=Column(Numeric(18, 2)))
    proceeds: Decimal | None = Field(default=None, sa_column=Column(Numeric(18, 2)))
    reason: str | None = Field(default=None, sa_column=Column(Text))
    requested_by_party_id: UUID
    requested_by_key_id: UUID | None = None
    requested_by_operator: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=timestamptz())
    # The lapse time: of the consent while `awaiting_consent`, of the hold while `pending`.
    hold_expires_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    # Joint application: whose consent this instruction waits for (or got), and who gave it.
    consent_party_id: UUID | None = Field(default=None, sa_column=Column(ForeignKey("party.id")))
    consented_by: str | None = Field(default=None, sa_column=Column(Text))
    consented_by_key_id: UUID | None = None
    consented_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    # Four eyes: the terms the first operator reviewed, which the second applies exactly.
    reviewed_by: str | None = Field(default=None, sa_column=Column(Text))
    reviewed_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    review_to_account_id: UUID | None = Field(default=None, sa_column=Column(ForeignKey("account.id")))
    review_price: Decimal | None = Field(default=None, sa_column=Column(Numeric(18, 2)))
    review_proceeds: Decimal | None = Field(default=None, sa_column=Column(Numeric(18, 2)))
    decided_by: str | None = Field(default=None, sa_column=Column(Text))
    decided_by_key_id: UUID | None = None
    decided_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    decision_reason: str | None = Field(default=None, sa_column=Column(Text))
    applied_quantity: int | None = Field(default=None, sa_column=Column(BigInteger))


class PledgeEvent(SQLModel, table=True):
    """One decision on an instruction (asked, consented, declined, reviewed, confirmed, rejected, cancelled,
    expired), naming the person; one hash chain per pledge (registry/audit/decisions.py)."""

    __tablename__ = "pledge_event"

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    pledge_id: UUID = Field(sa_column=Column(ForeignKey("pledge.id"), nullable=False))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    instruction_id: UUID = Field(sa_column=Column(ForeignKey("instruction.id"), nullable=False))
    actor_role: str = Field(sa_column=Column(Text, nullable=False))
    actor_party_id: UUID | None = None
    actor_key_id: UUID | None = None
    operator: str | None = Field(default=None, sa_column=Column(Text))
    request_id: str | None = Field(default=None, sa_column=Column(Text))
    reason: str | None = Field(default=None, sa_column=Column(Text))
    terms: str | None = Field(default=None, sa_column=Column(Text))
    occurred_at: datetime = Field(sa_column=timestamptz())
    prev_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))


class PledgeChain(SQLModel, table=True):
    """The head of a pledge's decision chain."""

    __tablename__ = "pledge_chain"

    pledge_id: UUID = Field(sa_column=Column(ForeignKey("pledge.id"), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    head: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
