"""Trade prices, valuations, alerts and the banks' webhooks."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import Response
from pydantic import RootModel

from api.auth import ActorDep, PrincipalDep
from api.deps import ClockDep, SessionDep, SettingsDep
from api.idempotency import IdempotencyKey, respond
from api.pagination import Cursor, Limit, encode, int_cursor
from api.routers.common import READ_ERRORS, WRITE_ERRORS
from api.schemas.common import CreditTypeCode, Page
from api.schemas.valuation import (
    AlertRead,
    DeliveryRead,
    PricesRead,
    ReferenceRead,
    TradeIn,
    TradeRead,
    TradesLoaded,
    ValuationRead,
    WebhookIn,
    WebhookRead,
)
from registry import outbound
from registry.alert import service as alerts
from registry.dates import check_day, exchange_day
from registry.ledger import service as ledger
from registry.pledge import reads
from registry.valuation import prices
from registry.valuation import service as valuation

router = APIRouter(prefix="/v1", tags=["valuation and alerts"])

AlertKind = Literal[
    "margin_warning", "margin_disposal", "maturity_upcoming", "matured_unreleased", "price_stale"
]


class TradeBatch(RootModel[Annotated[list[TradeIn], Body(min_length=1, max_length=5000)]]):
    pass


@router.post(
    "/prices/trades",
    status_code=201,
    response_model=TradesLoaded,
    responses=WRITE_ERRORS,
    summary="Load daily trade prints (exchange): all or nothing; active pledges are revalued at once",
)
def post_trades(request: Request, body: TradeBatch, session: SessionDep, actor: ActorDep, settings: SettingsDep,
                idempotency_key: IdempotencyKey = None) -> Response:  # fmt: skip
    def work() -> TradesLoaded:
        loaded = prices.record_trades(session, actor, [
            prices.Trade(t.credit_type, t.trade_date, t.price, t.volume, t.kind) for t in body.root
        ], field="body")  # fmt: skip
        revalued = valuation.revalue(session, now=actor.at, window_days=settings.vwap_days,
                                     credit_type_ids=loaded.credit_type_ids)  # fmt: skip
        return TradesLoaded(inserted=loaded.inserted, replaced=loaded.replaced, revalued=revalued.valued)

    return respond(request, session, actor, idempotency_key, body, work)


@router.get("/prices/{credit_type}", response_model=PricesRead, responses=READ_ERRORS,
            summary="Daily prints of a credit type and its reference price as of `to`")  # fmt: skip
def get_prices(credit_type: Annotated[CreditTypeCode, Path()], session: SessionDep, principal: PrincipalDep,
               settings: SettingsDep, clock: ClockDep, start: Annotated[date | None, Query(alias="from")] = None,
               to: date | None = None, kind: Literal["listed", "block"] | None = None) -> PricesRead:  # fmt: skip
    ct = ledger.require_credit_type(session, credit_type)
    assert ct.id is not None
    today = exchange_day(clock.now())
    if start is not None:
        check_day(start, "from", today=today)
    as_of = check_day(to, "to", today=today) if to is not None else today
    ref = valuation.reference(session, ct.id, as_of, settings.vwap_days)
    lower = ref.price("lower_of")[0] if ref.vwap is not None else None
    rows = prices.prints(session, ct.id, start=start, end=to, kind=kind)
    return PricesRead(
        credit_type=credit_type,
        items=[TradeRead(trade_date=r.trade_date, kind=r.kind, price=r.price, volume=r.volume) for r in rows],
        reference=ReferenceRead(as_of=as_of, window_days=settings.vwap_days, vwap=ref.vwap,
                                last_close=ref.last_close, last_close_date=ref.last_date, lower_of=lower,
                                stale=ref.stale),
    )  # fmt: skip


@router.get("/pledges/{pledge_id}/valuations", response_model=Page[ValuationRead], responses=READ_ERRORS,
            summary="A pledge's valuation history, newest first")  # fmt: skip
def list_valuations(pledge_id: UUID, session: SessionDep, principal: PrincipalDep, limit: Limit = 100,
                    cursor: Cursor = None) -> Page[ValuationRead]:  # fmt: skip
    reads.require_pledge(session, principal, pledge_id)
    rows = valuation.history(session, pledge_id, before_id=int_cursor(cursor), limit=limit)
    return Page(items=[ValuationRead.model_validate(r, from_attributes=True) for r in rows],
                next_cursor=encode(rows[-1].id) if len(rows) == limit else None)  # fmt: skip


@router.get("/alerts", response_model=Page[AlertRead], responses=READ_ERRORS,
            summary="Alerts (bank: its own; exchange and auditor: all)")  # fmt: skip
def list_alerts(session: SessionDep, principal: PrincipalDep, pledge_id: UUID | None = None,
                kind: AlertKind | None = None, status: Literal["open", "cleared"] | None = None,
                limit: Limit = 100, cursor: Cursor = None) -> Page[AlertRead]:  # fmt: skip
    rows = alerts.list_alerts(session, principal, pledge_id=pledge_id, kind=kind, status=status,
                              after=int_cursor(cursor), limit=limit)  # fmt: skip
    return Page(items=[AlertRead.model_validate(r, from_attributes=True) for r in rows],
                next_cursor=encode(rows[-1].id) if len(rows) == limit else None)  # fmt: skip


@router.post("/alerts/{alert_id}/ack", response_model=AlertRead, responses=WRITE_ERRORS,
             summary="Acknowledge an alert (its bank, or the exchange)")  # fmt: skip
def ack_alert(
    alert_id: Annotated[int, Path(ge=1, le=2**62)], session: SessionDep, actor: ActorDep
) -> AlertRead:
    return AlertRead.model_validate(alerts.acknowledge(session, actor, alert_id), from_attributes=True)


@router.put("/webhook", response_model=WebhookRead, responses=WRITE_ERRORS,
            summary="Where your alerts are POSTed, signed with your secret (bank)")  # fmt: skip
def put_webhook(request: Request, body: WebhookIn, session: SessionDep, actor: ActorDep,
                settings: SettingsDep) -> WebhookRead:  # fmt: skip
    policy = outbound.Policy.from_settings(settings, resolver=request.app.state.resolver)
    alerts.set_webhook(session, actor, url=body.url, secret=body.secret, policy=policy)
    return WebhookRead.model_validate(alerts.get_webhook(session, actor.principal), from_attributes=True)


@router.get("/webhook", response_model=WebhookRead, responses=READ_ERRORS, summary="Your webhook (bank)")
def get_webhook(session: SessionDep, principal: PrincipalDep) -> WebhookRead:
    return WebhookRead.model_validate(alerts.get_webhook(session, principal), from_attributes=True)


@router.get("/webhook/deliveries", response_model=Page[DeliveryRead], responses=READ_ERRORS,
            summary="Webhook deliveries and their state; `?status=failed` shows what never arrived")  # fmt: skip
def list_deliveries(session: SessionDep, principal: PrincipalDep,
                    status: Literal["pending", "delivered", "failed"] | None = None, limit: Limit = 100,
                    cursor: Cursor = None) -> Page[DeliveryRead]:  # fmt: skip
    rows = alerts.deliveries(session, principal, status=status, after=int_cursor(cursor), limit=limit)
    return Page(items=[DeliveryRead.model_validate(r, from_attributes=True) for r in rows],
                next_cursor=encode(rows[-1].id) if len(rows) == limit else None)  # fmt: skip
