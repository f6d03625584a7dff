"""Quarterly reports: a bank's collateral book and the exchange's statistics, as JSON, CSV or PDF."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.auth import PrincipalDep
from api.deps import ClockDep, SessionDep
from api.routers.common import errors
from api.schemas.reports import CollateralBookRead, ExchangeStatsRead
from registry.calendar import exchange_day
from registry.ledger.repository import exchange_name
from registry.pdf import write_pdf
from registry.principal import Principal
from registry.report import export
from registry.report.collateral_book import collateral_book
from registry.report.exchange_stats import exchange_stats
from registry.report.render import WritePdf
from registry.report.renderer import ReportRenderer

router = APIRouter(prefix="/v1/reports", tags=["reports"])

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


def _response(document: export.Document) -> Response:
    """The exporter's bytes as they are (the CLI writes the same): JSON inline, CSV as a download."""
    headers = {}
    if not document.media_type.startswith("application/json"):
        disposition = "inline" if document.media_type == "application/pdf" else "attachment"
        headers["Content-Disposition"] = f'{disposition}; filename="{document.filename}"'
    return Response(document.data, media_type=document.media_type, headers=headers)


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
    format: export.Format = export.Format.JSON,
) -> Any:
    today = exchange_day(clock.now())
    with _writer(renderer, session, principal, format) as write:  # a PDF is admitted before any work
        book = collateral_book(session, principal, as_of=as_of, bank_id=bank_id, today=today)
        document = export.collateral_book_document(book, format, issuer=exchange_name(session), write=write)
    return _response(document)


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
    format: export.Format = export.Format.JSON,
) -> Any:
    today = exchange_day(clock.now())
    with _writer(renderer, session, principal, format) as write:
        stats = exchange_stats(session, principal, period_from=period_from, period_to=period_to, today=today)
        document = export.exchange_stats_document(stats, format, issuer=exchange_name(session), write=write)
    return _response(document)


@contextmanager
def _writer(
    renderer: ReportRenderer, session: Session, principal: Principal, fmt: export.Format
) -> Iterator[WritePdf]:
    """Where a PDF is written: a place in the report renderers (or 429/503 at once); JSON and CSV need none."""
    if fmt is not export.Format.PDF:
        yield write_pdf
        return
    with renderer.admitted(session, _party(principal)) as write:
        yield write
