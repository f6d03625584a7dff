"""Server-rendered pages: one Jinja2 environment and the headers every page carries."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from registry.calendar import EXCHANGE_TZ
from registry.pdf import money, percent, units

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def when(value: datetime | None) -> str:
    """Times as people at the exchange read them: Beijing time, to the minute."""
    return "—" if value is None else value.astimezone(EXCHANGE_TZ).strftime("%Y-%m-%d %H:%M")


templates.env.filters.update(money=money, percent=percent, units=units, when=when)

# Pages are self-contained (inline styles, data: images): nothing else may load, nothing may frame them,
# and no address (a verification URL carries its code) leaks to another site as a referrer.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def wants_html(request: Request) -> bool:
    """A browser (a phone that scanned a QR code) asks for text/html first; API clients do not."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept.split(",")[0]


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, template, context, status_code=status_code, headers={**PAGE_HEADERS, **(headers or {})}
    )
