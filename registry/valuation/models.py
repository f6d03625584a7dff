"""Trade prices and valuations, equal to what migrations 0003 and 0009 create (tests/test_schema.py).

The service reads and writes them in SQL (registry/valuation/service.py, prices.py); these models are
the tables' description, for Alembic and for queries that want them. Valuations are append-only: a
trigger in migration 0003 refuses UPDATE and DELETE."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Identity,
    Index,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
)
from sqlmodel import Field, SQLModel, col

from registry.base import TextEnum, one_of, timestamptz


class TradeKind(StrEnum):
    LISTED = "listed"  # on the exchange's book: the close is their VWAP, the reference price reads them
    BLOCK = "block"  # negotiated block trades: they settle below the book and are kept apart


class ValuationMethod(StrEnum):
    """Which reference price values a pledge (the lender's choice, in its terms)."""

    VWAP = "vwap"
    LAST_CLOSE = "last_close"
    LOWER_OF = "lower_of"  # the lower of the two, for prudence


class ValuationLevel(StrEnum):
    OK = "ok"
    WARNING = "warning"  # coverage below the warning line
    DISPOSAL = "disposal"  # coverage below the disposal line


class ValuationError(StrEnum):
    """Why a pledge could not be valued (its valuation then has no figures)."""

    OUT_OF_RANGE = "out_of_range"  # a figure did not fit its column
    ERROR = "error"


# Price and volume bounds of a print, for the API's schemas and the loader's own checks.
MAX_PRICE = Decimal("1e9")
MAX_VOLUME = 10**12


class TradePrice(SQLModel, table=True):
    """A day's print of one credit type: listed trades (the close is their VWAP) or block trades, kept
    apart as the exchanges publish them. A later print for the same day replaces it."""

    __tablename__ = "trade_price"
    __table_args__ = (
        PrimaryKeyConstraint("credit_type_id", "kind", "trade_date"),
        CheckConstraint(one_of("kind", TradeKind), name="kind"),
        CheckConstraint("price > 0", name="price"),
        CheckConstraint("volume > 0", name="volume"),
    )

    credit_type_id: int = Field(sa_column=Column(SmallInteger, ForeignKey("credit_type.id"), nullable=False))
    trade_date: date = Field(sa_column=Column(Date, nullable=False))
    kind: TradeKind = Field(
        default=TradeKind.LISTED,
        sa_column=Column(TextEnum(TradeKind), nullable=False, server_default=TradeKind.LISTED.value),
    )
    price: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    volume: int = Field(sa_column=Column(BigInteger, nullable=False))
    entered_at: datetime = Field(sa_column=timestamptz())
    entered_by: str | None = Field(default=None, sa_column=Column(Text))


class Valuation(SQLModel, table=True):
    """One pledge valued on one day: the price used, the collateral value and the coverage it gives."""

    __tablename__ = "valuation"
    __table_args__ = (
        CheckConstraint(one_of("level", ValuationLevel), name="level"),
        # A pledge the revaluation could not value (migration 0009).
        CheckConstraint(one_of("error", ValuationError), name="error"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    pledge_id: UUID = Field(sa_column=Column(ForeignKey("pledge.id"), nullable=False))
    valued_at: datetime = Field(sa_column=timestamptz())
    as_of: date = Field(sa_column=Column(Date, nullable=False))
    method: ValuationMethod = Field(sa_column=Column(TextEnum(ValuationMethod), nullable=False))
    price: Decimal | None = Field(default=None, sa_column=Column(Numeric(12, 2)))
    price_date: date | None = Field(default=None, sa_column=Column(Date))
    stale: bool = Field(sa_column=Column(Boolean, nullable=False))
    quantity: int = Field(sa_column=Column(BigInteger, nullable=False))
    # Wide enough for every value the inputs allow (migration 0009).
    collateral_value: Decimal | None = Field(default=None, sa_column=Column(Numeric(26, 2)))
    outstanding_principal: Decimal = Field(sa_column=Column(Numeric(18, 2), nullable=False))
    coverage_ratio: Decimal | None = Field(default=None, sa_column=Column(Numeric(30, 4)))
    pledge_rate: Decimal | None = Field(default=None, sa_column=Column(Numeric(30, 4)))
    level: ValuationLevel | None = Field(default=None, sa_column=Column(TextEnum(ValuationLevel)))
    error: ValuationError | None = Field(default=None, sa_column=Column(TextEnum(ValuationError)))


# A pledge's valuations newest first, by insertion and by time (descending keys: built on the columns).
Index("ix_valuation_pledge", col(Valuation.pledge_id), col(Valuation.id).desc())
Index("ix_valuation_pledge_time", col(Valuation.pledge_id), col(Valuation.valued_at).desc())
