"""Console: pledges and their certificates, alerts, search and a unit's history."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from api.console import common
from api.console.auth import (
    UserDep,
    check_csrf,
    lang_of,
    render,
)
from api.console.i18n import translator
from api.deps import ClockDep, SessionDep
from api.reads import pledge_reads
from api.rendering import RendererDep
from registry import authz, charts
from registry.alert import policy as alert_policy
from registry.alert import service as alerts
from registry.alert.models import AlertStatus
from registry.audit import service as audit
from registry.certificate import service as certificates
from registry.errors import NotFound
from registry.ledger import repository as ledger_repo
from registry.pledge import reads
from registry.pledge.states import PledgeStatus
from registry.valuation import service as valuation

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/pledges")
def pledges_page(
    request: Request,
    session: SessionDep,
    user: UserDep,
    status: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    statuses = tuple(PledgeStatus)
    chosen = PledgeStatus(status) if status in statuses else None  # a word it does not know: all of them
    items = reads.list_pledges(session, user.principal, status=chosen, after=None, limit=200)
    shown = pledge_reads(session, items)
    names = ledger_repo.party_names(
        session, {i for p in shown for i in (p.pledgee_party_id, p.pledgor_party_id, p.borrower_party_id)}
    )
    return render(request, "pledges.html", user, pledges=shown, names=names, statuses=statuses, chosen=chosen)


@router.get("/pledges/{pledge_id}")
def pledge_page(
    request: Request,
    pledge_id: UUID,
    session: SessionDep,
    user: UserDep,
    done: str | None = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    principal = user.principal
    pledge = reads.require_pledge(session, principal, pledge_id)
    read = pledge_reads(session, [pledge])[0]
    destinations = {i.to_account_id for i in read.instructions if i.to_account_id} | {
        pledge.pledgor_account_id
    }
    places = ledger_repo.account_places(session, destinations)
    names = ledger_repo.party_names(
        session, [pledge.pledgee_party_id, pledge.pledgor_party_id, pledge.borrower_party_id]
    )
    t = translator(lang_of(request))
    chart = charts.coverage_chart(
        [
            (v.as_of, v.coverage_ratio)
            for v in reversed(valuation.history(session, pledge.id, before_id=None, limit=120))
        ],
        [
            charts.Line(t("Warning line"), pledge.warning_ratio, "#c77700"),
            charts.Line(t("Disposal line"), pledge.disposal_ratio, "#b3261e"),
        ],
        title=t("Coverage ratio over time"),
    )
    page_size = 20
    history = valuation.changes(session, pledge.id, before_id=before, limit=page_size + 1)
    pledge_alerts = (
        alerts.list_alerts(
            session, principal, pledge_id=pledge.id, kind=None, status=None, after=None, limit=100
        )
        if alert_policy.may_read(principal)
        else []
    )
    return render(
        request,
        "pledge.html",
        user,
        p=read,
        names=names,
        places=places,
        versions=certificates.versions(session, pledge.id),
        ptypes=ledger_repo.project_type_names(session),
        history=history[:page_size],
        older=history[page_size - 1].id if len(history) > page_size else None,
        chart=chart,
        alerts=pledge_alerts,
        notice=common.notice(done),
    )


@router.get("/pledges/{pledge_id}/certificate")
def certificate(
    pledge_id: UUID,
    session: SessionDep,
    user: UserDep,
    renderer: RendererDep,
    clock: ClockDep,
    version: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> Response:
    pledge = reads.require_pledge(session, user.principal, pledge_id)
    found = certificates.require(session, pledge.id, version)
    pdf = certificates.pdf_for(session, found, renderer, clock.now())
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{found.number}.pdf"',
            "Cache-Control": "private, no-store",
        },
    )


# --- alerts ------------------------------------------------------------------------------------------


@router.get("/alerts")
def alerts_page(request: Request, session: SessionDep, user: UserDep, done: str | None = None) -> Response:
    rows = alerts.list_alerts(
        session, user.principal, pledge_id=None, kind=None, status=AlertStatus.OPEN, after=None, limit=500
    )
    return render(request, "alerts.html", user, alerts=rows, notice=common.notice(done))


@router.post("/alerts/{alert_id}/ack")
def ack(
    request: Request,
    alert_id: Annotated[int, Path(ge=1, le=2**62)],
    session: SessionDep,
    user: UserDep,
    clock: ClockDep,
    csrf: common.CsrfField = "",
) -> Response:
    check_csrf(user, csrf)
    refused = common.attempt(
        session, lambda: alerts.acknowledge(session, common.actor_of(request, user, clock), alert_id)
    )
    return common.outcome(request, user, refused, back="/console/alerts", then="/console/alerts?done=acked")


# --- search and unit history -------------------------------------------------------------------------


@router.get("/search")
def search_page(
    request: Request, session: SessionDep, user: UserDep, q: Annotated[str, Query(max_length=100)] = ""
) -> Response:
    found = pledge_reads(session, reads.search(session, user.principal, q))
    names = ledger_repo.party_names(
        session, {i for p in found for i in (p.pledgee_party_id, p.pledgor_party_id, p.borrower_party_id)}
    )
    units = []
    if q.strip().isdigit() and user.principal.role in authz.READERS_OF_EVERYTHING:
        units = [ct.code for ct in ledger_repo.credit_types(session)]
    return render(
        request, "search.html", user, q=q, pledges=found, names=names, unit_types=units, serial=q.strip()
    )


@router.get("/units/{credit_type}/{serial}")
def unit_page(
    request: Request,
    credit_type: Annotated[str, Path(max_length=16)],
    serial: Annotated[int, Path(ge=1, le=2**40 - 1)],
    session: SessionDep,
    user: UserDep,
) -> Response:
    events = audit.unit_history(session, user.principal, credit_type, serial, after_id=None, limit=500)
    if not events:
        raise NotFound("unit", f"{credit_type} {serial}")
    accounts = {e.from_party_id for e in events} | {e.to_party_id for e in events}
    names = ledger_repo.party_names(session, [a for a in accounts if a is not None])
    return render(
        request, "unit.html", user, credit_type=credit_type, serial=serial, events=events, names=names
    )
