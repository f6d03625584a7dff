"""Errors on console pages are pages too: a message, never a stack trace or a JSON body."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.console.i18n import translator
from api.pages import page


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
