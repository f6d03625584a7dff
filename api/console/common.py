"""What every console page module shares: the redirect after a form (post/redirect/get) and the notices it
may announce, the acting user as an actor, a form's action run in a savepoint, a refusal shown as a page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from api.console.auth import (
    flash,
    lang_of,
)
from api.console.i18n import translator
from api.console.messages import describe
from registry import text
from registry.errors import InvalidInput, RegistryError
from registry.principal import Actor
from registry.users.service import SignedIn

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


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def notice(done: str | None) -> str | None:
    return NOTICES.get(done or "")


def actor_of(request: Request, user: SignedIn, clock: Any) -> Actor:
    return Actor(user.principal, clock.now(), request_id=getattr(request.state, "request_id", None))


def with_reason(
    session: Session, reason: str, required: str, work: Callable[[str], Any]
) -> RegistryError | None:
    """An action that needs a reason: the API's text rule for it, then the action in a savepoint."""
    try:
        why = text.clean(reason, max_length=text.REASON_MAX, min_length=0)
    except text.BadText:
        return InvalidInput("reason", text.REFUSED_MESSAGE)
    if not why:
        return InvalidInput("reason", required)
    return attempt(session, lambda: work(why))


def attempt(session: Session, work: Callable[[], Any]) -> RegistryError | None:
    """Run a form's action in a savepoint: refused, it leaves nothing behind and the page can still be
    drawn in the same transaction."""
    try:
        with session.begin_nested():
            work()
    except RegistryError as refused:
        return refused
    return None


def refused_page(request: Request, user: SignedIn, refused: RegistryError, back: str) -> Response:
    """A refused action: back to the page it was taken on, which says why in the user's language
    (post/redirect/get: a refresh shows the page again, it does not send the form again)."""
    response = redirect(back)
    flash(request, response, user, "err", describe(refused, translator(lang_of(request))))
    return response


def outcome(
    request: Request, user: SignedIn, refused: RegistryError | None, *, back: str, then: str
) -> Response:
    """After a form's action: the refusal shown on the page it came from (`back`), or see other `then`
    (post/redirect/get: a refresh does not submit the form again)."""
    if refused is not None:
        return refused_page(request, user, refused, back)
    return redirect(then)
