"""Console sign-in state: the session cookie, the CSRF token every form sends back, the language."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from api.console.errors import SignInRequired
from api.console.i18n import LANGUAGES, translator
from api.deps import ClockDep, SessionDep
from api.pages import page
from registry.config import Settings
from registry.errors import RegistryError
from registry.users import service as users
from registry.users.service import SignedIn

SESSION_COOKIE = "registry_session"
FLASH_COOKIE = "registry_flash"
LOGIN_CSRF_COOKIE = "registry_login_csrf"
LANG_COOKIE = "registry_lang"
PATH = "/console"


class CsrfRefused(RegistryError):
    code = "csrf_failed"
    title = "Form refused"
    message = "The form did not carry this session's token; reload the page and try again."

    def __init__(self) -> None:
        super().__init__("the form did not carry this session's token; reload the page and try again")


def signed_in(request: Request, session: SessionDep, clock: ClockDep) -> SignedIn | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    return users.resume(session, token, clock.now()) if token else None


def require_user(request: Request, session: SessionDep, clock: ClockDep) -> SignedIn:
    user = signed_in(request, session, clock)
    if user is None:
        raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return user


UserDep = Annotated[SignedIn, Depends(require_user)]
MaybeUserDep = Annotated[SignedIn | None, Depends(signed_in)]


def check_csrf(user: SignedIn, token: str) -> None:
    if not hmac.compare_digest(token.encode(), user.csrf_token.encode()):
        raise CsrfRefused


def check_login_csrf(request: Request, token: str) -> None:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(token.encode(), cookie.encode()):
        raise CsrfRefused


def secure_cookies(settings: Settings) -> bool:
    """Secure cookies whenever the registry is served over https (always, in production)."""
    return settings.base_url().startswith("https://")


def set_cookie(response: Response, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        secure=secure_cookies(settings),
        samesite="lax",
    )


def flash(request: Request, response: Response, user: SignedIn, kind: str, message: str) -> None:
    """What the page after a redirect says (post/redirect/get: a refresh never resubmits the form). Signed
    with the session's own token, so that only this session's answers can be shown as its messages."""
    payload = base64.urlsafe_b64encode(json.dumps([kind, message]).encode()).decode()
    signature = hmac.new(user.csrf_token.encode(), payload.encode(), hashlib.sha256).hexdigest()
    set_cookie(response, request.app.state.settings, FLASH_COOKIE, f"{payload}.{signature}", max_age=120)


def take_flash(request: Request, user: SignedIn | None) -> tuple[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE, "")
    payload, _, signature = raw.partition(".")
    if user is None or not payload:
        return None
    expected = hmac.new(user.csrf_token.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        kind, message = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return None
    return (str(kind), str(message)) if kind in ("ok", "err") else None


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def lang_of(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "zh")
    return lang if lang in LANGUAGES else "zh"


def safe_next(value: str | None) -> str:
    """Only a path inside the console: never an address elsewhere (no open redirect)."""
    if value and value.startswith(f"{PATH}/") and not value.startswith("//") and "\\" not in value:
        return value
    return f"{PATH}/"


def render(
    request: Request,
    template: str,
    user: SignedIn | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = lang_of(request)
    flashed = take_flash(request, user)
    if flashed is not None:  # the answer to the form just sent, shown once
        context[{"ok": "notice", "err": "error"}[flashed[0]]] = flashed[1]
    response = page(
        request,
        f"console/{template}",
        {
            "notice": None,
            "error": None,
            **context,
            "t": translator(lang),
            "lang": lang,
            "user": user,
            "csrf": user.csrf_token if user else "",
            "here": quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="/?=&"
            ),
        },
        status_code=status_code,
    )
    if flashed is not None:
        response.delete_cookie(FLASH_COOKIE, path=PATH)
    return response
