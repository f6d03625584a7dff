"""A certificate's facts to a PDF: a Jinja2 template, a QR code, WeasyPrint. Pure: no database, no clock,
so it runs in a worker process and renders the same facts to the same bytes.

Chinese is set in Noto Sans/Serif CJK SC from the system (Debian's fonts-noto-cjk, installed by
scripts/install); WeasyPrint embeds the subset it uses. Nothing is fetched while rendering."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import jinja2
import segno

from registry.pdf import money, percent, units, write_pdf

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("registry.certificate", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def verify_url(base_url: str, number: str, code: str) -> str:
    return f"{base_url.rstrip('/')}/v1/certificates/{quote(number, safe='')}/verify?code={code}"


def grouped(code: str) -> str:
    """ABCD-EFGH-JKMN: easier to read off the paper and type back."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


_env.filters.update(money=money, percent=percent, units=units, grouped=grouped)


def render_html(content: dict[str, Any], base_url: str) -> str:
    url = verify_url(base_url, content["number"], content["verification_code"])
    qr = segno.make(url, error="m").svg_data_uri(scale=4, border=0, dark="#1a1a1a")
    return _env.get_template("certificate.html").render(c=content, verify_url=url, qr=qr)


def render_pdf(content: dict[str, Any], base_url: str) -> bytes:
    return write_pdf(render_html(content, base_url))
