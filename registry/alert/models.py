"""Alerts to lending banks, their webhooks and the delivery outbox, equal to what migrations 0003 and
0009 create (tests/test_schema.py). The services read and write them in SQL (registry/alert/service.py,
delivery.py, registry/valuation/service.py)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Identity, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from registry.base import TextEnum, one_of, timestamptz


class AlertKind(StrEnum):
    MARGIN_WARNING = "margin_warning"  # coverage below the warning line (the revaluation's)
    MARGIN_DISPOSAL = "margin_disposal"  # ... below the disposal line
    MATURITY_UPCOMING = "maturity_upcoming"  # a reminder some days before maturity (the maturity job's)
    MATURED_UNRELEASED = "matured_unreleased"  # matured and still pledged
    PRICE_STALE = "price_stale"  # valued at a price with no trade in the VWAP window


class AlertStatus(StrEnum):
    OPEN = "open"
    CLEARED = "cleared"  # what raised it has ended


class WebhookEvent(StrEnum):
    """What a webhook delivery says happened to its alert."""

    RAISED = "alert.raised"
    CLEARED = "alert.cleared"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # to be sent, or sent again after a backoff
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed


class Alert(SQLModel, table=True):
    """Raised once per crossing: one open alert per pledge, kind and trigger; maturity reminders once ever."""

    __tablename__ = "alert"
    __table_args__ = (
        CheckConstraint(one_of("kind", AlertKind), name="kind"),
        CheckConstraint(one_of("status", AlertStatus), name="status"),
        Index(
            "uq_alert_open",
            "pledge_id",
            "kind",
            "trigger",
            unique=True,
            postgresql_where=text(f"status = '{AlertStatus.OPEN}'"),
        ),
        Index(
            "uq_alert_maturity_once",
            "pledge_id",
            "trigger",
            unique=True,
            postgresql_where=text(f"kind = '{AlertKind.MATURITY_UPCOMING}'"),
        ),
        Index("ix_alert_bank", "pledgee_party_id", "id"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    pledge_id: UUID = Field(sa_column=Column(ForeignKey("pledge.id"), nullable=False))
    pledgee_party_id: UUID = Field(nullable=False)
    kind: AlertKind = Field(sa_column=Column(TextEnum(AlertKind), nullable=False))
    # Which crossing: for maturity_upcoming the days before ('30', '7', '1'); else empty.
    trigger: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    status: AlertStatus = Field(
        default=AlertStatus.OPEN,
        sa_column=Column(TextEnum(AlertStatus), nullable=False, server_default=AlertStatus.OPEN.value),
    )
    raised_at: datetime = Field(sa_column=timestamptz())
    cleared_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    acked_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    acked_by: str | None = Field(default=None, sa_column=Column(Text))
    details: Any = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}"))


class Webhook(SQLModel, table=True):
    """A bank's endpoint. The secret is kept in clear: HMAC keys sign, so they cannot be hashed."""

    __tablename__ = "webhook"

    party_id: UUID = Field(sa_column=Column(ForeignKey("party.id"), primary_key=True))
    url: str = Field(sa_column=Column(Text, nullable=False))
    secret: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(sa_column=timestamptz())


_PENDING = f"status = '{DeliveryStatus.PENDING}'"


class WebhookDelivery(SQLModel, table=True):
    """The outbox: written in the alert's transaction, delivered afterwards, retried with backoff; a
    delivery being sent is leased (`lease_until`), at most one per bank."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        CheckConstraint(one_of("status", DeliveryStatus), name="status"),
        Index("ix_webhook_delivery_due", "next_attempt_at", postgresql_where=text(_PENDING)),
        Index("ix_webhook_delivery_party", "party_id", "id"),
        # /metrics counts failed deliveries at every scrape; delivered ones pile up forever (migration 0013).
        Index(
            "ix_webhook_delivery_failed", "id", postgresql_where=text(f"status = '{DeliveryStatus.FAILED}'")
        ),
        Index(
            "ix_webhook_delivery_party_due",
            "party_id",
            "next_attempt_at",
            postgresql_where=text(_PENDING),
        ),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    alert_id: int = Field(sa_column=Column(BigInteger, ForeignKey("alert.id"), nullable=False))
    party_id: UUID = Field(nullable=False)
    event: WebhookEvent = Field(sa_column=Column(TextEnum(WebhookEvent), nullable=False))
    payload: Any = Field(sa_column=Column(JSONB, nullable=False))
    status: DeliveryStatus = Field(
        default=DeliveryStatus.PENDING,
        sa_column=Column(
            TextEnum(DeliveryStatus), nullable=False, server_default=DeliveryStatus.PENDING.value
        ),
    )
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default=text("0")))
    next_attempt_at: datetime = Field(sa_column=timestamptz())
    last_error: str | None = Field(default=None, sa_column=Column(Text))  # a failure category, never a text
    delivered_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    created_at: datetime = Field(sa_column=timestamptz())
    lease_until: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
