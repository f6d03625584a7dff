"""HTML to PDF with WeasyPrint, for certificates and reports alike.

One font configuration per process, shared by every document: a fresh one per document loads the CJK
fonts again and the process grows by about 2 MB a document (bench/certificate_bench.py measures it)."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import Any

logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # a line per step of every document

_fonts: Any = None
_lock = threading.Lock()  # WeasyPrint's font machinery is not known to be thread-safe


def write_pdf(html: str) -> bytes:
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    global _fonts  # noqa: PLW0603 (a per-process cache, see above)
    with _lock:
        if _fonts is None:
            _fonts = FontConfiguration()
        pdf: bytes = HTML(string=html).write_pdf(font_config=_fonts)
    return pdf


# How figures print on documents and pages.
def money(value: str | Decimal | None) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f}"


def percent(value: str | Decimal | None) -> str:
    return "—" if value is None else f"{Decimal(value) * 100:.2f}%"


def units(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"
