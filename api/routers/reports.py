"""Quarterly reports: a bank's collateral book and the exchange's statistics, as JSON, CSV or PDF."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.auth import PrincipalDep
from api.deps import ClockDep, SessionDep
from api.routers.common import errors
from api.schemas.reports import CollateralBookRead, ExchangeStatsRead
from registry.calendar import exchange_day
from registry.ledger.repository import exchange_name
from registry.principal import Principal
from registry.report import export
from registry.report.collateral_book import collateral_book
from registry.report.exchange_stats import exchange_stats
from registry.report.render import collateral_book_pdf, exchange_stats_pdf
from registry.report.renderer import ReportRenderer

router = APIRouter(prefix="/v1/reports", tags=["reports"])

Format = Literal["json", "csv", "pdf"]
CSV_RESPONSE = {
    "content": {"text/csv": {}, "application/pdf": {}},
    "description": "JSON; CSV with `?format=csv`; a PDF with charts with `?format=pdf`",
}
PDF_LIMITS = {
    429: "`rate_limited`: this party already has as many PDF reports rendering as it may; retry after "
         "`Retry-After` seconds",
    503: "`busy`: the report renderers (or the database) are busy; retry after `Retry-After` seconds",
}  # fmt: skip


async def get_report_renderer(request: Request) -> ReportRenderer:
    renderer: ReportRenderer = request.app.state.report_renderer
    return renderer


ReportRendererDep = Annotated[ReportRenderer, Depends(get_report_renderer)]


def _party(principal: Principal) -> UUID:
    assert principal.party_id is not None  # every key belongs to a party
    return principal.party_id


def _pdf(pdf: bytes, filename: str) -> Response:
    return Response(
        pdf, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{filename}"'}
    )


def _csv(rows: list[dict[str, Any]], filename: str) -> Response:
    return Response(
        export.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/collateral-book",
    operation_id="get_collateral_book",
    response_model=CollateralBookRead,
    responses={200: CSV_RESPONSE, **errors(401, 403, 404, 422, 429, 503, described=PDF_LIMITS)},
    summary="A bank's collateral book as of the end of a day (bank: its own; exchange, auditor: `bank_id`)",
)
def read_collateral_book(
    session: SessionDep,
    principal: PrincipalDep,
    clock: ClockDep,
    renderer: ReportRendererDep,
    as_of: Annotated[date, Query(description="a past day or today, Beijing time")],
    bank_id: UUID | None = None,
    format: Format = "json",
) -> Any:
    today = exchange_day(clock.now())
    name = f"collateral-book-{as_of.isoformat()}"
    if format == "pdf":  # admitted (or refused) before any of the report's work
        with renderer.admitted(session, _party(principal)) as write:
            book = collateral_book(session, principal, as_of=as_of, bank_id=bank_id, today=today)
            pdf = collateral_book_pdf(book, exchange_name(session), write)
        return _pdf(pdf, f"{name}.pdf")
    book = collateral_book(session, principal, as_of=as_of, bank_id=bank_id, today=today)
    if format == "json":
        return CollateralBookRead.model_validate(asdict(book))
    return _csv(export.collateral_book_rows(book), f"{name}.csv")


@router.get(
    "/exchange",
    operation_id="get_exchange_stats",
    response_model=ExchangeStatsRead,
    responses={200: CSV_RESPONSE, **errors(401, 403, 422, 429, 503, described=PDF_LIMITS)},
    summary="The exchange's pledge statistics for a period (exchange, auditor)",
)
def read_exchange_stats(
    session: SessionDep,
    principal: PrincipalDep,
    clock: ClockDep,
    renderer: ReportRendererDep,
    period_from: Annotated[date, Query(alias="from")],
    period_to: Annotated[date, Query(alias="to")],
    format: Format = "json",
) -> Any:
    today = exchange_day(clock.now())
    name = f"exchange-{period_from.isoformat()}-{period_to.isoformat()}"
    if format == "pdf":
        with renderer.admitted(session, _party(principal)) as write:
            stats = exchange_stats(
                session, principal, period_from=period_from, period_to=period_to, today=today
            )
            pdf = exchange_stats_pdf(stats, exchange_name(session), write)
        return _pdf(pdf, f"{name}.pdf")
    stats = exchange_stats(session, principal, period_from=period_from, period_to=period_to, today=today)
    if format == "json":
        return ExchangeStatsRead.model_validate(asdict(stats))
    return _csv(export.exchange_stats_rows(stats), f"{name}.csv")
