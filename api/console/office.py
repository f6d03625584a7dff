"""Console: the back office's queue (confirm, reject, the four eyes of a disposal) and the other party's
consent to a joint application (consent, decline, a bank's withdrawal)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.console import common
from api.console.auth import (
    UserDep,
    check_csrf,
    render,
)
from api.deps import ClockDep, SessionDep, SettingsDep
from api.reads import instruction_read, pledge_reads
from api.rendering import render_after_response
from registry.errors import InvalidInput, NotFound
from registry.ledger import repository as ledger_repo
from registry.pledge import reads
from registry.pledge import service as pledges
from registry.pledge.rules import MAX_PRINCIPAL
from registry.pledge.states import InstructionStatus
from registry.users.service import SignedIn

router = APIRouter(prefix="/console", include_in_schema=False)


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
        request, "queue.html", user, rows=rows, notice=common.notice(done), error=None, me=user.user.username
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
    csrf: common.CsrfField = "",
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
                session,
                common.actor_of(request, user, clock),
                instruction_id,
                window_days=settings.vwap_days,
                **terms,
            )
        )

    refused = common.attempt(session, work)
    if refused is not None:
        return common.refused_page(request, user, refused, "/console/queue")
    instruction = decided[0]
    if instruction.status == InstructionStatus.PENDING:  # first pair of eyes on a disposal
        return common.redirect("/console/queue?done=reviewed")
    render_after_response(request, background, instruction.pledge_id)
    return common.redirect(f"/console/pledges/{instruction.pledge_id}?done=confirmed")


@router.post("/instructions/{instruction_id}/reject")
def reject(
    request: Request,
    instruction_id: UUID,
    session: SessionDep,
    user: UserDep,
    clock: ClockDep,
    csrf: common.CsrfField = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    check_csrf(user, csrf)
    actor = common.actor_of(request, user, clock)
    refused = common.with_reason(
        session, reason, "A reason is required to reject.",
        lambda why: pledges.reject(session, actor, instruction_id, reason=why),
    )  # fmt: skip
    return common.outcome(request, user, refused, back="/console/queue", then="/console/queue?done=rejected")


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
    return render(request, "consents.html", user, items=items, names=names, notice=common.notice(done))


@router.post("/instructions/{instruction_id}/consent")
def consent(
    request: Request,
    instruction_id: UUID,
    session: SessionDep,
    user: UserDep,
    clock: ClockDep,
    settings: SettingsDep,
    csrf: common.CsrfField = "",
) -> Response:
    check_csrf(user, csrf)
    actor = common.actor_of(request, user, clock)
    refused = common.attempt(
        session,
        lambda: pledges.consent(
            session, actor, instruction_id, hold_business_days=settings.hold_business_days
        ),
    )
    return common.outcome(
        request, user, refused, back="/console/consents", then="/console/consents?done=consented"
    )


@router.post("/instructions/{instruction_id}/decline")
def decline(
    request: Request,
    instruction_id: UUID,
    session: SessionDep,
    user: UserDep,
    clock: ClockDep,
    csrf: common.CsrfField = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    check_csrf(user, csrf)
    actor = common.actor_of(request, user, clock)
    refused = common.with_reason(
        session, reason, "A reason is required to decline.",
        lambda why: pledges.decline(session, actor, instruction_id, reason=why),
    )  # fmt: skip
    return common.outcome(
        request, user, refused, back="/console/consents", then="/console/consents?done=declined"
    )


@router.post("/instructions/{instruction_id}/cancel")
def cancel(
    request: Request,
    instruction_id: UUID,
    session: SessionDep,
    user: UserDep,
    clock: ClockDep,
    csrf: common.CsrfField = "",
) -> Response:
    """The party that asked withdraws its request (a bank's request, or a pledgor's)."""
    check_csrf(user, csrf)
    found = reads.require_instruction(session, user.principal, instruction_id)
    back = f"/console/pledges/{found.pledge_id}"
    refused = common.attempt(
        session, lambda: pledges.cancel(session, common.actor_of(request, user, clock), instruction_id)
    )
    return common.outcome(request, user, refused, back=back, then=f"{back}?done=cancelled")
