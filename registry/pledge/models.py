"""Pledge and instruction tables; their one-way rules are triggers in migration 0002."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import BigInteger, Column, Date, ForeignKey, Identity, Numeric, SmallInteger, Text
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
    hold_expires_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    reviewed_by: str | None = Field(default=None, sa_column=Column(Text))
    reviewed_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    decided_by: str | None = Field(default=None, sa_column=Column(Text))
    decided_by_key_id: UUID | None = None
    decided_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    decision_reason: str | None = Field(default=None, sa_column=Column(Text))
    applied_quantity: int | None = Field(default=None, sa_column=Column(BigInteger))
