"""Pledge and instruction tables, equal to what migrations 0002, 0007 and 0008 create (tests/test_schema.py);
their one-way rules are triggers there."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    Numeric,
    Sequence,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from registry.audit.decisions import DecisionKind
from registry.base import TextEnum, one_of, timestamptz
from registry.pledge.states import InstructionStatus, InstructionType, PledgeStatus
from registry.principal import Role
from registry.valuation.models import ValuationMethod

P, S = PledgeStatus, InstructionStatus
# Registration numbers are drawn from it (registry/pledge/repository.py).
REGISTRATION_NO_SEQ = Sequence("registration_no_seq", metadata=SQLModel.metadata)
# A pledge that has not (yet, or ever) been confirmed has no registration number.
_UNREGISTERED = (P.PENDING, P.REJECTED, P.DECLINED, P.CANCELLED, P.EXPIRED)
# Instructions still open: waiting for a consent or for the exchange.
_OPEN = (S.AWAITING_CONSENT, S.PENDING)
# The highest warning line a lender may set (the request's rules and the API's schema check it too).
MAX_LINE_RATIO = 10


class Pledge(SQLModel, table=True):
    __tablename__ = "pledge"
    __table_args__ = (
        CheckConstraint(one_of("status", PledgeStatus), name="status"),
        CheckConstraint("principal > 0", name="principal_positive"),
        CheckConstraint(
            "outstanding_principal >= 0 AND outstanding_principal <= principal", name="outstanding"
        ),
        CheckConstraint("currency = 'CNY'", name="currency"),
        CheckConstraint("max_pledge_rate > 0 AND max_pledge_rate <= 1", name="max_pledge_rate"),
        CheckConstraint(one_of("valuation_method", ValuationMethod), name="valuation_method"),
        CheckConstraint("haircut >= 0 AND haircut < 1", name="haircut"),
        CheckConstraint("maturity_date > start_date", name="term"),
        CheckConstraint(
            f"disposal_ratio > 0 AND disposal_ratio < warning_ratio AND warning_ratio <= {MAX_LINE_RATIO}",
            name="lines",
        ),
        CheckConstraint(
            f"({one_of('status', _UNREGISTERED)}) = (registration_no IS NULL)", name="registered"
        ),
        CheckConstraint("pledgee_party_id <> pledgor_party_id", name="parties"),
        Index("ix_pledge_pledgee", "pledgee_party_id", "status", "id"),
        Index("ix_pledge_pledgor", "pledgor_party_id", "id"),
        Index("ix_pledge_borrower", "borrower_party_id", "id"),
        Index("ix_pledge_status", "status", "id"),
        Index("ix_pledge_confirmed_at", "confirmed_at", postgresql_where=text("confirmed_at IS NOT NULL")),
        Index("ix_pledge_closed_at", "closed_at", postgresql_where=text("closed_at IS NOT NULL")),
        # One open pledge per bank and loan contract.
        Index(
            "uq_pledge_open_loan",
            "pledgee_party_id",
            "contract_no",
            unique=True,
            postgresql_where=text(one_of("status", (P.PENDING, P.ACTIVE))),
        ),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    status: PledgeStatus = Field(sa_column=Column(TextEnum(PledgeStatus), nullable=False))
    registration_no: str | None = Field(default=None, sa_column=Column(Text, unique=True))
    pledgee_party_id: UUID = Field(sa_column=Column(ForeignKey("party.id"), nullable=False))
    pledgor_account_id: UUID = Field(sa_column=Column(ForeignKey("account.id"), nullable=False))
    pledgor_party_id: UUID = Field(sa_column=Column(ForeignKey("party.id"), nullable=False))
    borrower_party_id: UUID = Field(sa_column=Column(ForeignKey("party.id"), nullable=False))
    contract_no: str = Field(sa_column=Column(Text, nullable=False))
    principal: Decimal = Field(sa_column=Column(Numeric(18, 2), nullable=False))
    outstanding_principal: Decimal = Field(sa_column=Column(Numeric(18, 2), nullable=False))
    currency: str = Field(default="CNY", sa_column=Column(Text, nullable=False, server_default="CNY"))
    start_date: date = Field(sa_column=Column(Date, nullable=False))
    maturity_date: date = Field(sa_column=Column(Date, nullable=False))
    credit_type_id: int = Field(sa_column=Column(SmallInteger, ForeignKey("credit_type.id"), nullable=False))
    max_pledge_rate: Decimal = Field(sa_column=Column(Numeric(7, 4), nullable=False))
    warning_ratio: Decimal = Field(sa_column=Column(Numeric(7, 4), nullable=False))
    disposal_ratio: Decimal = Field(sa_column=Column(Numeric(7, 4), nullable=False))
    valuation_method: ValuationMethod = Field(sa_column=Column(TextEnum(ValuationMethod), nullable=False))
    haircut: Decimal = Field(
        default=Decimal(0), sa_column=Column(Numeric(5, 4), nullable=False, server_default=text("0"))
    )
    pboc_registration_no: str | None = Field(default=None, sa_column=Column(Text))
    bank_ref: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=timestamptz())
    hold_expires_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    confirmed_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))


class Instruction(SQLModel, table=True):
    __tablename__ = "instruction"
    __table_args__ = (
        CheckConstraint(one_of("type", InstructionType), name="type"),
        CheckConstraint(one_of("status", InstructionStatus), name="status"),
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("outstanding_principal >= 0", name="outstanding"),
        CheckConstraint("price >= 0", name="price"),
        CheckConstraint("proceeds >= 0", name="proceeds"),
        CheckConstraint(f"({one_of('status', _OPEN)}) = (decided_at IS NULL)", name="decided"),
        CheckConstraint("review_price >= 0", name="review_price"),
        CheckConstraint("review_proceeds >= 0", name="review_proceeds"),
        # Waiting for a consent names whose; an instruction that needed one reached the exchange only with it.
        CheckConstraint(
            f"(status <> '{S.AWAITING_CONSENT}' OR consent_party_id IS NOT NULL)"
            " AND (consent_party_id IS NULL OR consented_at IS NOT NULL"
            f" OR {one_of('status', (S.AWAITING_CONSENT, S.DECLINED, S.CANCELLED, S.EXPIRED))})",
            name="consent",
        ),
        # Four eyes binds the terms. NOT VALID in the migration: older disposals kept no reviewed terms.
        CheckConstraint(
            f"type <> '{InstructionType.DISPOSE}' OR status <> '{S.CONFIRMED}' OR ("
            "reviewed_by IS NOT NULL AND decided_by IS DISTINCT FROM reviewed_by"
            " AND to_account_id IS NOT DISTINCT FROM review_to_account_id"
            " AND price IS NOT DISTINCT FROM review_price"
            " AND proceeds IS NOT DISTINCT FROM review_proceeds)",
            name="four_eyes",
            postgresql_not_valid=True,
        ),
        Index("ix_instruction_pledge", "pledge_id", "seq"),
        Index("ix_instruction_queue", "status", "seq"),
        # One open instruction per pledge.
        Index(
            "uq_instruction_one_open",
            "pledge_id",
            unique=True,
            postgresql_where=text(one_of("status", _OPEN)),
        ),
        Index(
            "ix_instruction_consent",
            "consent_party_id",
            "seq",
            postgresql_where=text(f"status = '{S.AWAITING_CONSENT}'"),
        ),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(always=True), unique=True))
    pledge_id: UUID = Field(sa_column=Column(ForeignKey("pledge.id"), nullable=False))
    type: InstructionType = Field(sa_column=Column(TextEnum(InstructionType), nullable=False))
    status: InstructionStatus = Field(sa_column=Column(TextEnum(InstructionStatus), nullable=False))
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
    __table_args__ = (
        CheckConstraint(one_of("kind", DecisionKind), name="kind"),
        UniqueConstraint("pledge_id", "seq", name="uq_pledge_event_seq"),
        Index("ix_pledge_event_instruction", "instruction_id"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    pledge_id: UUID = Field(sa_column=Column(ForeignKey("pledge.id"), nullable=False))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: DecisionKind = Field(sa_column=Column(TextEnum(DecisionKind), nullable=False))
    instruction_id: UUID = Field(sa_column=Column(ForeignKey("instruction.id"), nullable=False))
    actor_role: Role = Field(sa_column=Column(TextEnum(Role), nullable=False))
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
    __table_args__ = (CheckConstraint("seq > 0", name="seq"),)

    pledge_id: UUID = Field(sa_column=Column(ForeignKey("pledge.id"), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    head: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
