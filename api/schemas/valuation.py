from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import (
    CreditTypeCode,
    Day,
    DecimalString,
    MoneyOut,
    Page,
    RatioOut,
    Schema,
    decimal_schema,
)
from registry.alert.models import AlertKind, AlertStatus, DeliveryStatus, WebhookEvent
from registry.alert.service import MIN_SECRET_LENGTH
from registry.outbound import MAX_URL_LENGTH
from registry.valuation.models import (
    MAX_PRICE,
    MAX_VOLUME,
    TradeKind,
    ValuationError,
    ValuationLevel,
    ValuationMethod,
)

Price = Annotated[
    Decimal,
    DecimalString,
    Field(gt=0, le=MAX_PRICE, max_digits=11, decimal_places=2),
    decimal_schema(r"^\d{1,9}(\.\d{1,2})?$", 'CNY per unit as a decimal string, e.g. "68.50"'),
]


class TradeIn(Schema):
    credit_type: CreditTypeCode
    trade_date: Day = Field(description="the trading day (Beijing); not after today, not before 2000")
    price: Price = Field(
        description="the day's price: for listed trades their VWAP (the national market's close)"
    )
    volume: Annotated[int, Field(strict=True, gt=0, le=MAX_VOLUME, description="units traded")]
    kind: TradeKind = TradeKind.LISTED


class TradesLoaded(BaseModel):
    inserted: int
    replaced: int = Field(description="prints for a day that already had one: the new print replaces it")
    revalued: int = Field(description="active pledges of those credit types valued again at once")


class TradeRead(BaseModel):
    trade_date: date
    kind: TradeKind
    price: MoneyOut
    volume: int


class ReferenceRead(BaseModel):
    as_of: date
    window_days: int
    vwap: MoneyOut | None
    last_close: MoneyOut | None
    last_close_date: date | None
    lower_of: MoneyOut | None
    stale: bool = Field(description="no listed trade in the window: a value from this price must be flagged")


class PricesPage(Page[TradeRead]):
    """A credit type's daily prints, oldest first, a page at a time; each page with the reference price."""

    credit_type: str
    reference: ReferenceRead


class ValuationRead(BaseModel):
    id: int
    valued_at: datetime
    as_of: date
    method: ValuationMethod
    price: MoneyOut | None
    price_date: date | None
    stale: bool
    quantity: int
    collateral_value: MoneyOut | None
    outstanding_principal: MoneyOut
    coverage_ratio: RatioOut | None
    pledge_rate: RatioOut | None
    level: ValuationLevel | None
    error: ValuationError | None = Field(
        default=None,
        description="set when this pledge could not be valued (the figures are then null): `out_of_range` "
        "when a figure could not be stored; the other pledges were valued all the same",
    )


def _none(value: object) -> bool:
    return value is None


def _member(description: str | None = None) -> Any:
    """A member that only some kinds of alert have: left out of the others."""
    return Field(default=None, exclude_if=_none, description=description)


class AlertDetails(BaseModel):
    """What raised an alert: the valuation's figures (margin and stale-price alerts) or the maturity
    (maturity alerts). Only the members of the alert's kind are sent, as in the webhook's payload."""

    model_config = ConfigDict(extra="allow")

    coverage_ratio: RatioOut | None = _member()
    level: ValuationLevel | None = _member()
    price: MoneyOut | None = _member("the reference price it was valued at")
    price_date: date | None = _member()
    stale: bool | None = _member()
    warning_ratio: RatioOut | None = _member()
    disposal_ratio: RatioOut | None = _member()
    maturity_date: date | None = _member()
    days_before: int | None = _member("`maturity_upcoming`: how many days before maturity")


class AlertRead(BaseModel):
    id: int
    pledge_id: UUID
    registration_no: str | None
    kind: AlertKind
    trigger: str
    status: AlertStatus
    raised_at: datetime
    cleared_at: datetime | None
    acked_at: datetime | None
    acked_by: str | None
    details: AlertDetails


class AlertEvent(BaseModel):
    """What a bank's webhook is sent for each raised or cleared alert: this JSON, POSTed with
    `X-Registry-Signature: sha256=<hex HMAC-SHA256 of the body with the bank's secret>` and
    `X-Registry-Delivery` (the same for every retry of one delivery: deduplicate on it)."""

    event: WebhookEvent
    alert_id: int
    pledge_id: UUID
    kind: AlertKind = Field(description="as in `GET /v1/alerts`")
    trigger: str
    details: AlertDetails
    at: datetime


class WebhookIn(Schema):
    url: Annotated[str, Field(min_length=8, max_length=MAX_URL_LENGTH)]
    secret: Annotated[
        str,
        Field(
            min_length=MIN_SECRET_LENGTH,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description="shared secret for the HMAC-SHA256 signature",
        ),
    ]


class WebhookRead(BaseModel):
    url: str
    updated_at: datetime


class DeliveryRead(BaseModel):
    id: int
    alert_id: int
    event: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = Field(
        description="why the last attempt failed, as a category: `timeout`, `refused`, `tls`, `dns`, "
        "`address_not_public`, `invalid_url`, `http_<status>` or `error`"
    )
    delivered_at: datetime | None
    created_at: datetime


class ValuationPage(Page[ValuationRead]):
    """A pledge's valuations, newest first."""


class AlertPage(Page[AlertRead]):
    pass


class DeliveryPage(Page[DeliveryRead]):
    pass
