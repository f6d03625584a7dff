"""Console: signing in and out, the language, the home page that sends each user where its work is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from api.console import common
from api.console.auth import (
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    MaybeUserDep,
    UserDep,
    check_csrf,
    check_login_csrf,
    new_login_csrf,
    render,
    safe_next,
    set_cookie,
)
from api.console.i18n import LANGUAGES
from api.deps import ClockDep, SessionDep, SettingsDep, client_of
from registry.principal import Role
from registry.ratelimit import service as ratelimit
from registry.users import service as users

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/login")
def login_page(
    request: Request, settings: SettingsDep, user: MaybeUserDep, next: str | None = None
) -> Response:
    if user is not None:
        return common.redirect(safe_next(next))
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
    csrf: common.CsrfField = "",
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
    redirect = common.redirect(safe_next(next))
    set_cookie(redirect, settings, SESSION_COOKIE, token, max_age=int(users.ABSOLUTE.total_seconds()))
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return redirect


@router.post("/logout")
def logout(
    request: Request, session: SessionDep, clock: ClockDep, user: UserDep, csrf: common.CsrfField = ""
) -> Response:
    check_csrf(user, csrf)
    users.end_session(session, user.session_id, clock.now())
    response = common.redirect("/console/login")
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.get("/lang/{lang}")
def switch_language(lang: Annotated[str, Path(max_length=2)], next: str | None = None) -> Response:
    response = common.redirect(safe_next(next))
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/console", samesite="lax")
    return response


@router.get("")
@router.get("/")
def home(user: UserDep) -> Response:
    role = user.principal.role
    return common.redirect("/console/queue" if role is Role.EXCHANGE else "/console/pledges")
