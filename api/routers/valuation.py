"""Trade prices, valuations, alerts and the banks' webhooks."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import Response
from pydantic import RootModel

from api.auth import ActorDep, PrincipalDep
from api.deps import ClockDep, SessionDep, SettingsDep
from api.idempotency import IdempotencyKey, respond
from api.pagination import Cursor, Limit, encode, int_cursor, pair_cursor
from api.routers.common import errors
from api.schemas.common import CreditTypeCode
from api.schemas.valuation import (
    AlertPage,
    AlertRead,
    DeliveryPage,
    DeliveryRead,
    PricesPage,
    ReferenceRead,
    TradeIn,
    TradeRead,
    TradesLoaded,
    ValuationPage,
    ValuationRead,
    WebhookIn,
    WebhookRead,
)
from registry import outbound
from registry.alert import service as alerts
from registry.alert.models import AlertKind, AlertStatus, DeliveryStatus
from registry.calendar import check_day, exchange_day
from registry.errors import InvalidInput
from registry.ledger import service as ledger
from registry.pledge import reads
from registry.valuation import prices
from registry.valuation import service as valuation
from registry.valuation.models import TradeKind, ValuationMethod

# Two tags: prices and valuations; alerts and webhooks (each route says which).
router = APIRouter(prefix="/v1")


class TradeBatch(RootModel[Annotated[list[TradeIn], Body(min_length=1, max_length=5000)]]):
    pass


@router.post(
    "/prices/trades",
    operation_id="load_trades",
    tags=["valuation"],
    status_code=201,
    response_model=TradesLoaded,
    responses=errors(401, 403, 409, 413, 422, 503),
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


@router.get("/prices/{credit_type}", operation_id="get_prices", tags=["valuation"], response_model=PricesPage,
            responses=errors(401, 404, 422, 503),
            summary="Daily prints of a credit type, oldest first, and its reference price as of `to`")  # fmt: skip
def get_prices(credit_type: Annotated[CreditTypeCode, Path()], session: SessionDep, principal: PrincipalDep,
               settings: SettingsDep, clock: ClockDep, start: Annotated[date | None, Query(alias="from")] = None,
               to: date | None = None, kind: TradeKind | None = None, limit: Limit = 100,
               cursor: Cursor = None) -> PricesPage:  # fmt: skip
    ct = ledger.require_credit_type(session, credit_type)
    assert ct.id is not None
    today = exchange_day(clock.now())
    if start is not None:
        check_day(start, "from", today=today)
    as_of = check_day(to, "to", today=today) if to is not None else today
    ref = valuation.reference(session, ct.id, as_of, settings.vwap_days)
    lower = ref.price(ValuationMethod.LOWER_OF)[0] if ref.vwap is not None else None
    rows = prices.prints(
        session, ct.id, start=start, end=to, kind=kind, after=_print_cursor(cursor), limit=limit
    )
    return PricesPage(
        credit_type=credit_type,
        items=[TradeRead(trade_date=r.trade_date, kind=r.kind, price=r.price, volume=r.volume) for r in rows],
        next_cursor=encode([rows[-1].trade_date.toordinal(), prices.TRADE_KINDS.index(rows[-1].kind)])
        if len(rows) == limit
        else None,
        reference=ReferenceRead(as_of=as_of, window_days=settings.vwap_days, vwap=ref.vwap,
                                last_close=ref.last_close, last_close_date=ref.last_date, lower_of=lower,
                                stale=ref.stale),
    )  # fmt: skip


@router.get("/pledges/{pledge_id}/valuations", operation_id="list_valuations", tags=["valuation"],
            response_model=ValuationPage, responses=errors(401, 404, 422, 503),
            summary="A pledge's valuation history, newest first")  # fmt: skip
def list_valuations(pledge_id: UUID, session: SessionDep, principal: PrincipalDep, limit: Limit = 100,
                    cursor: Cursor = None) -> ValuationPage:  # fmt: skip
    reads.require_pledge(session, principal, pledge_id)
    rows = valuation.history(session, pledge_id, before_id=int_cursor(cursor), limit=limit)
    return ValuationPage(items=[ValuationRead.model_validate(r, from_attributes=True) for r in rows],
                next_cursor=encode(rows[-1].id) if len(rows) == limit else None)  # fmt: skip


@router.get("/alerts", operation_id="list_alerts", tags=["alerts"], response_model=AlertPage,
            responses=errors(401, 403, 422, 503),
            summary="Alerts (bank: its own; exchange and auditor: all)")  # fmt: skip
def list_alerts(session: SessionDep, principal: PrincipalDep, pledge_id: UUID | None = None,
                kind: AlertKind | None = None, status: AlertStatus | None = None,
                limit: Limit = 100, cursor: Cursor = None) -> AlertPage:  # fmt: skip
    rows = alerts.list_alerts(session, principal, pledge_id=pledge_id, kind=kind, status=status,
                              after=int_cursor(cursor), limit=limit)  # fmt: skip
    return AlertPage(items=[AlertRead.model_validate(r, from_attributes=True) for r in rows],
                next_cursor=encode(rows[-1].id) if len(rows) == limit else None)  # fmt: skip


@router.post("/alerts/{alert_id}/ack", operation_id="acknowledge_alert", tags=["alerts"], response_model=AlertRead,
             responses=errors(401, 403, 404, 422, 503),
             summary="Acknowledge an alert (its bank, or the exchange)")  # fmt: skip
def ack_alert(
    alert_id: Annotated[int, Path(ge=1, le=2**62)], session: SessionDep, actor: ActorDep
) -> AlertRead:
    return AlertRead.model_validate(alerts.acknowledge(session, actor, alert_id), from_attributes=True)


@router.put("/webhook", operation_id="set_webhook", tags=["alerts"], response_model=WebhookRead,
            responses=errors(401, 403, 413, 422, 503),
            summary="Where your alerts are POSTed, signed with your secret (bank)")  # fmt: skip
def put_webhook(request: Request, body: WebhookIn, session: SessionDep, actor: ActorDep,
                settings: SettingsDep) -> WebhookRead:  # fmt: skip
    policy = outbound.Policy.from_settings(settings, resolver=request.app.state.resolver)
    alerts.set_webhook(session, actor, url=body.url, secret=body.secret, policy=policy)
    return WebhookRead.model_validate(alerts.get_webhook(session, actor.principal), from_attributes=True)


@router.get("/webhook", operation_id="get_webhook", tags=["alerts"], response_model=WebhookRead,
            responses=errors(401, 403, 404, 503), summary="Your webhook (bank)")  # fmt: skip
def get_webhook(session: SessionDep, principal: PrincipalDep) -> WebhookRead:
    return WebhookRead.model_validate(alerts.get_webhook(session, principal), from_attributes=True)


@router.get("/webhook/deliveries", operation_id="list_webhook_deliveries", tags=["alerts"],
            response_model=DeliveryPage, responses=errors(401, 403, 422, 503),
            summary="Webhook deliveries and their state; `?status=failed` shows what never arrived")  # fmt: skip
def list_deliveries(session: SessionDep, principal: PrincipalDep,
                    status: DeliveryStatus | None = None, limit: Limit = 100,
                    cursor: Cursor = None) -> DeliveryPage:  # fmt: skip
    rows = alerts.deliveries(session, principal, status=status, after=int_cursor(cursor), limit=limit)
    return DeliveryPage(items=[DeliveryRead.model_validate(r, from_attributes=True) for r in rows],
                next_cursor=encode(rows[-1].id) if len(rows) == limit else None)  # fmt: skip


def _print_cursor(cursor: str | None) -> tuple[date, TradeKind] | None:
    """The print a page of prices starts after: its day (as an ordinal) and its kind (an index)."""
    pair = pair_cursor(cursor)
    if pair is None:
        return None
    day, kind = pair
    if not 0 <= kind < len(prices.TRADE_KINDS):
        raise InvalidInput("cursor", "not a cursor this API returned")
    try:
        return date.fromordinal(day), prices.TRADE_KINDS[kind]
    except (ValueError, OverflowError):
        raise InvalidInput("cursor", "not a cursor this API returned") from None
