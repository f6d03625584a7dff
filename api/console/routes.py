"""Console pages. Each page reads through the same domain services as the API, as the signed-in user's
principal, so what a page shows or does is exactly what that user's API key could; every form carries the
session's CSRF token; a refused action is shown as a message on the page."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from api.console.auth import (
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    MaybeUserDep,
    UserDep,
    check_csrf,
    check_login_csrf,
    flash,
    lang_of,
    new_login_csrf,
    render,
    safe_next,
    set_cookie,
)
from api.console.i18n import LANGUAGES, translator
from api.console.messages import describe
from api.deps import ClockDep, SessionDep, SettingsDep, client_of
from api.reads import instruction_read, pledge_reads
from api.rendering import RendererDep, render_after_response
from registry import authz, charts, text
from registry.alert import policy as alert_policy
from registry.alert import service as alerts
from registry.alert.models import AlertStatus
from registry.audit import service as audit
from registry.certificate import service as certificates
from registry.errors import InvalidInput, NotFound, RegistryError
from registry.ledger import repository as ledger_repo
from registry.pledge import reads
from registry.pledge import service as pledges
from registry.pledge.rules import MAX_PRINCIPAL
from registry.pledge.states import InstructionStatus, PledgeStatus
from registry.principal import Actor, Role
from registry.ratelimit import service as ratelimit
from registry.users import service as users
from registry.users.service import SignedIn
from registry.valuation import service as valuation

router = APIRouter(prefix="/console", include_in_schema=False)

CsrfField = Annotated[str, Form(max_length=200)]
NOTICES = {  # what a redirect after a successful form may announce: fixed texts, never from the address
    "confirmed": "Confirmed.",
    "reviewed": "Reviewed: a second operator must now confirm.",
    "rejected": "Rejected.",
    "acked": "Alert acknowledged.",
    "consented": "Consented: the request now goes to the exchange.",
    "declined": "Declined.",
    "cancelled": "Withdrawn.",
}


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _notice(done: str | None) -> str | None:
    return NOTICES.get(done or "")


def _actor(request: Request, user: SignedIn, clock: Any) -> Actor:
    return Actor(user.principal, clock.now(), request_id=getattr(request.state, "request_id", None))


def _with_reason(
    session: Session, reason: str, required: str, work: Callable[[str], Any]
) -> RegistryError | None:
    """An action that needs a reason: the API's text rule for it, then the action in a savepoint."""
    try:
        why = text.clean(reason, max_length=text.REASON_MAX, min_length=0)
    except text.BadText:
        return InvalidInput("reason", text.REFUSED_MESSAGE)
    if not why:
        return InvalidInput("reason", required)
    return _attempt(session, lambda: work(why))


def _attempt(session: Session, work: Callable[[], Any]) -> RegistryError | None:
    """Run a form's action in a savepoint: refused, it leaves nothing behind and the page can still be
    drawn in the same transaction."""
    try:
        with session.begin_nested():
            work()
    except RegistryError as refused:
        return refused
    return None


# --- signing in -------------------------------------------------------------------------------------


@router.get("/login")
def login_page(
    request: Request, settings: SettingsDep, user: MaybeUserDep, next: str | None = None
) -> Response:
    if user is not None:
        return _redirect(safe_next(next))
    token = new_login_csrf()
    response = render(request, "login.html", None, login_csrf=token, next=safe_next(next), error=None)
    set_cookie(response, settings, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: CsrfField = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    check_login_csrf(request, csrf)
    now, client = clock.now(), client_of(request)

    def again(status: int, error: str, **headers: str) -> Response:
        response = render(request, "login.html", None, status_code=status, login_csrf=csrf, next=safe_next(next),
                          error=error, username=username)  # fmt: skip
        response.headers.update(headers)
        return response

    try:
        user = users.sign_in(session, username, password, client=client, now=now)  # counted before the hash
    except ratelimit.RateLimited as limited:
        return again(429, "Too many attempts; try again later.", **{"Retry-After": str(limited.retry_after)})
    if user is None:
        return again(401, "Wrong username or password.")
    token, _ = users.start_session(session, user, now)
    redirect = _redirect(safe_next(next))
    set_cookie(redirect, settings, SESSION_COOKIE, token, max_age=int(users.ABSOLUTE.total_seconds()))
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return redirect


@router.post("/logout")
def logout(
    request: Request, session: SessionDep, clock: ClockDep, user: UserDep, csrf: CsrfField = ""
) -> Response:
    check_csrf(user, csrf)
    users.end_session(session, user.session_id, clock.now())
    response = _redirect("/console/login")
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.get("/lang/{lang}")
def switch_language(lang: Annotated[str, Path(max_length=2)], next: str | None = None) -> Response:
    response = _redirect(safe_next(next))
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/console", samesite="lax")
    return response


@router.get("")
@router.get("/")
def home(user: UserDep) -> Response:
    role = user.principal.role
    return _redirect("/console/queue" if role is Role.EXCHANGE else "/console/pledges")


# --- the back office ---------------------------------------------------------------------------------


def _queue(session: Session, user: SignedIn, clock: Any, settings: Any) -> list[reads.QueueItem]:
    return reads.queue(session, user.principal, at=clock.now(), window_days=settings.vwap_days)


@router.get("/queue")
def queue_page(
    request: Request,
    session: SessionDep,
    user: UserDep,
    clock: ClockDep,
    settings: SettingsDep,
    done: str | None = None,
) -> Response:
    rows = _queue(session, user, clock, settings)
    return render(
        request, "queue.html", user, rows=rows, notice=_notice(done), error=None, me=user.user.username
    )


MoneyField = Annotated[str, Form(max_length=20)]


def _amount(value: str, field: str) -> Decimal | None:
    """An amount typed into a form: empty is none; otherwise a positive decimal with at most two places."""
    text = value.strip().replace(",", "")
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise InvalidInput(field, "Enter an amount such as 68.50.") from exc
    if not amount.is_finite() or amount < 0 or amount > MAX_PRINCIPAL or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise InvalidInput(field, "Enter an amount such as 68.50.")
    return amount


def _offered_terms(session: Session, buyer_account: str, price: str, proceeds: str) -> dict[str, Any]:
    buyer = None
    if buyer_account.strip():
        found = ledger_repo.get_account_by_number(session, buyer_account.strip())
        if found is None:
            raise NotFound("account", buyer_account.strip(), field="buyer_account")
        buyer = found.id
    return {
        "buyer_account_id": buyer,
        "price": _amount(price, "price"),
        "proceeds": _amount(proceeds, "proceeds"),
    }


@router.post("/instructions/{instruction_id}/confirm")
def confirm(
    request: Request,
    instruction_id: UUID,
    session: SessionDep,
    user: UserDep,
    clock: ClockDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    csrf: CsrfField = "",
    buyer_account: Annotated[str, Form(max_length=32)] = "",
    price: MoneyField = "",
    proceeds: MoneyField = "",
) -> Response:
    check_csrf(user, csrf)
    decided: list[Any] = []

    def work() -> None:
        terms = _offered_terms(session, buyer_account, price, proceeds)
        decided.append(
            pledges.confirm(
                session, _actor(request, user, clock), instruction_id, window_days=settings.vwap_days, **terms
            )
        )

    refused = _attempt(session, work)
    if refused is not None:
        return _refused(request, user, refused, "/console/queue")
    instruction = decided[0]
    if instruction.status == InstructionStatus.PENDING:  # first pair of eyes on a disposal
        return _redirect("/console/queue?done=reviewed")
    render_after_response(request, background, instruction.pledge_id)
    return _redirect(f"/console/pledges/{instruction.pledge_id}?done=confirmed")


@router.post("/instructions/{instruction_id}/reject")
def reject(
    request: Request,
    instruction_id: UUID,
    session: SessionDep,
    user: UserDep,
    clock: ClockDep,
    settings: SettingsDep,
    csrf: CsrfField = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    check_csrf(user, csrf)
    actor = _actor(request, user, clock)
    refused = _with_reason(
        session, reason, "A reason is required to reject.",
        lambda why: pledges.reject(session, actor, instruction_id, reason=why),
    )  # fmt: skip
    if refused is not None:
        return _refused(request, user, refused, "/console/queue")
    return _redirect("/console/queue?done=rejected")


def _refused(request: Request, user: SignedIn, refused: RegistryError, back: str) -> Response:
    """A refused action: back to the page it was taken on, which says why in the user's language
    (post/redirect/get: a refresh shows the page again, it does not send the form again)."""
    response = _redirect(back)
    flash(request, response, user, "err", describe(refused, translator(lang_of(request))))
    return response


# --- joint application: the other party's consent ----------------------------------------------------


def _consents(session: Session, user: SignedIn) -> tuple[list[Any], dict[UUID, str]]:
    waiting = reads.list_instructions(
        session, user.principal, status=None, after=None, limit=200, awaiting_me=True
    )
    found = {
        p.id: p for p in pledge_reads(session, reads.pledges_by_id(session, {i.pledge_id for i in waiting}))
    }
    items = [(instruction_read(i), found[i.pledge_id]) for i in waiting]
    names = ledger_repo.party_names(
        session,
        {x for _, p in items for x in (p.pledgee_party_id, p.pledgor_party_id)}
        | {i.requested_by_party_id for i, _ in items},
    )
    return items, names


@router.get("/consents")
def consents_page(request: Request, session: SessionDep, user: UserDep, done: str | None = None) -> Response:
    """The requests waiting for this user's party to agree: a bank's for the pledgor, a pledgor's for the bank."""
    items, names = _consents(session, user)
    return render(request, "consents.html", user, items=items, names=names, notice=_notice(done))


@router.post("/instructions/{instruction_id}/consent")
def consent(
    request: Request,
    instruction_id: UUID,
    session: SessionDep,
    user: UserDep,
    clock: ClockDep,
    settings: SettingsDep,
    csrf: CsrfField = "",
) -> Response:
    check_csrf(user, csrf)
    actor = _actor(request, user, clock)
    refused = _attempt(
        session,
        lambda: pledges.consent(
            session, actor, instruction_id, hold_business_days=settings.hold_business_days
        ),
    )
    if refused is not None:
        return _refused(request, user, refused, "/console/consents")
    return _redirect("/console/consents?done=consented")


@router.post("/instructions/{instruction_id}/decline")
def decline(
    request: Request,
    instruction_id: UUID,
    session: SessionDep,
    user: UserDep,
    clock: ClockDep,
    csrf: CsrfField = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    check_csrf(user, csrf)
    actor = _actor(request, user, clock)
    refused = _with_reason(
        session, reason, "A reason is required to decline.",
        lambda why: pledges.decline(session, actor, instruction_id, reason=why),
    )  # fmt: skip
    if refused is not None:
        return _refused(request, user, refused, "/console/consents")
    return _redirect("/console/consents?done=declined")


@router.post("/instructions/{instruction_id}/cancel")
def cancel(
    request: Request,
    instruction_id: UUID,
    session: SessionDep,
    user: UserDep,
    clock: ClockDep,
    csrf: CsrfField = "",
) -> Response:
    """The party that asked withdraws its request (a bank's request, or a pledgor's)."""
    check_csrf(user, csrf)
    found = reads.require_instruction(session, user.principal, instruction_id)
    back = f"/console/pledges/{found.pledge_id}"
    refused = _attempt(session, lambda: pledges.cancel(session, _actor(request, user, clock), instruction_id))
    if refused is not None:
        return _refused(request, user, refused, back)
    return _redirect(f"{back}?done=cancelled")


# --- pledges -----------------------------------------------------------------------------------------


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
        notice=_notice(done),
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
    return render(request, "alerts.html", user, alerts=rows, notice=_notice(done))


@router.post("/alerts/{alert_id}/ack")
def ack(
    request: Request,
    alert_id: Annotated[int, Path(ge=1, le=2**62)],
    session: SessionDep,
    user: UserDep,
    clock: ClockDep,
    csrf: CsrfField = "",
) -> Response:
    check_csrf(user, csrf)
    refused = _attempt(session, lambda: alerts.acknowledge(session, _actor(request, user, clock), alert_id))
    if refused is not None:
        return _refused(request, user, refused, "/console/alerts")
    return _redirect("/console/alerts?done=acked")


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
