"""A certificate's facts to a PDF: a Jinja2 template, a QR code, WeasyPrint. Pure: no database, no clock,
so it runs in a worker process and renders the same facts to the same bytes.

Chinese is set in Noto Sans/Serif CJK SC from the system (Debian's fonts-noto-cjk, installed by
scripts/install); WeasyPrint embeds the subset it uses. Nothing is fetched while rendering."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import jinja2
import segno

logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # a line per step of every document

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("registry.certificate", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

# One font configuration per process, shared by every rendering: a fresh one per document loads the CJK
# fonts again and the process grows by about 2 MB a document (bench/certificate_bench.py measures it).
_fonts: Any = None
_lock = threading.Lock()  # WeasyPrint's font machinery is not known to be thread-safe


def verify_url(base_url: str, number: str, code: str) -> str:
    return f"{base_url.rstrip('/')}/v1/certificates/{quote(number, safe='')}/verify?code={code}"


def grouped(code: str) -> str:
    """ABCD-EFGH-JKMN: easier to read off the paper and type back."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def money(value: str | Decimal | None) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f}"


def percent(value: str | Decimal | None) -> str:
    return "—" if value is None else f"{Decimal(value) * 100:.2f}%"


def units(value: int) -> str:
    return f"{value:,}"


_env.filters.update(money=money, percent=percent, units=units, grouped=grouped)


def render_html(content: dict[str, Any], base_url: str) -> str:
    url = verify_url(base_url, content["number"], content["verification_code"])
    qr = segno.make(url, error="m").svg_data_uri(scale=4, border=0, dark="#1a1a1a")
    return _env.get_template("certificate.html").render(c=content, verify_url=url, qr=qr)


def render_pdf(content: dict[str, Any], base_url: str) -> bytes:
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    global _fonts  # noqa: PLW0603 (a per-process cache, see above)
    html = render_html(content, base_url)
    with _lock:
        if _fonts is None:
            _fonts = FontConfiguration()
        pdf: bytes = HTML(string=html).write_pdf(font_config=_fonts)
    return pdf
