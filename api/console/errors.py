"""Errors on console pages are pages too: a message, never a stack trace or a JSON body."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.console.i18n import translator
from api.pages import page


class SignInRequired(Exception):
    """Raised by pages that need a user; answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def sign_in_first(request: Request, exc: Exception) -> RedirectResponse:
    """See other: the sign-in page, which comes back to the page asked for once signed in."""
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(f"/console/login?next={quote(exc.next_path, safe='')}", status_code=303)


def is_console(request: Request) -> bool:
    return request.url.path == "/console" or request.url.path.startswith("/console/")


def error_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    lang = request.cookies.get("registry_lang", "zh")
    t = translator(lang if lang in ("zh", "en") else "zh")
    heading = t("Not found") if status == 404 else t("Something went wrong")
    return page(
        request,
        "console/error.html",
        {"t": t, "lang": lang, "user": None, "csrf": "", "here": "/console/", "heading": heading,
         "title": title, "detail": detail, "status": status},
        status_code=status,
    )  # fmt: skip
