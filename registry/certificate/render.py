"""A certificate's facts to a PDF: a Jinja2 template, a QR code, WeasyPrint. Pure: no database, no clock,
so it runs in a worker process and renders the same facts to the same bytes.

Chinese is set in Noto Sans/Serif CJK SC from the system (Debian's fonts-noto-cjk, installed by
scripts/install); WeasyPrint embeds the subset it uses. Nothing is fetched while rendering.

What is the same for every certificate is made once per process: the template compiled, its stylesheet
(templates/certificate.css) parsed, the fonts loaded, the elements' computed styles (registry/pdf.py).
WeasyPrint's cost is mostly per run of text on a line (~1 ms each: a box, a Pango layout, its drawing), so
English in running text is set in the text's own colour, not in a grey span of its own; the labels,
headings and column heads keep their smaller grey English. The QR code is a PNG of 8×8
pixels a module, drawn without smoothing: WeasyPrint draws an SVG code path by path in Python, ~0.05 s a
certificate, and the picture scans the same."""

from __future__ import annotations

import struct
import zlib
from base64 import b64encode
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
import segno

from registry.pdf import money, percent, stylesheet, units, write_pdf

if TYPE_CHECKING:
    from weasyprint import CSS

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("registry.certificate", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
QR_SCALE = 8  # pixels a module: sharp even where a viewer smooths the picture anyway
QR_DARK, QR_LIGHT = b"\x1a", b"\xff"  # #1a1a1a on white, as the text


def verify_url(base_url: str, number: str, code: str) -> str:
    return f"{base_url.rstrip('/')}/v1/certificates/{quote(number, safe='')}/verify?code={code}"


def grouped(code: str) -> str:
    """ABCD-EFGH-JKMN: easier to read off the paper and type back."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


_env.filters.update(money=money, percent=percent, units=units, grouped=grouped)


def qr_png(data: str) -> bytes:
    """`data` as a QR code (error correction M, no quiet zone: the page's white is one), an 8-bit grey PNG.
    Written here a module at a time: segno's own PNG goes pixel by pixel in Python, ~20 ms at this scale."""
    rows = segno.make(data, error="m").matrix
    size = len(rows) * QR_SCALE
    raw = b"".join(
        (b"\x00" + b"".join((QR_DARK if dark else QR_LIGHT) * QR_SCALE for dark in row)) * QR_SCALE
        for row in rows
    )  # each pixel row: filter type 0, then its pixels

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    # width, height, 8 bits, grey, deflate, filter method 0, no interlace
    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def stylesheet_css() -> str:
    return files("registry.certificate").joinpath("templates/certificate.css").read_text("utf-8")


@cache
def _stylesheet() -> CSS:
    return stylesheet(stylesheet_css())


def render_html(content: dict[str, Any], base_url: str) -> str:
    url = verify_url(base_url, content["number"], content["verification_code"])
    qr = "data:image/png;base64," + b64encode(qr_png(url)).decode()
    return _env.get_template("certificate.html").render(c=content, verify_url=url, qr=qr)


def render_pdf(content: dict[str, Any], base_url: str) -> bytes:
    return write_pdf(render_html(content, base_url), _stylesheet(), share_styles=True)
