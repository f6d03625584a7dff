"""Reports as JSON, CSV or PDF: the one exporter the API and the command line both call, so that both
write the same bytes (`collateral_book_document`, `exchange_stats_document`).

JSON is the report's fields in order, money and ratios as decimal strings, days as ISO dates (what the
API's schemas in api/schemas/reports.py describe; a test holds the two equal). CSV has one row per
figure or line, every section of the report named in its first column. PDF is rendered by
registry/report/render.py, deterministic for the same report (WeasyPrint writes no dates into it).

Every cell of text is written so that no spreadsheet runs it (OWASP "CSV injection"): text beginning
with `=`, `+`, `-`, `@`, a tab or a carriage return (or their full-width forms, which some spreadsheets
also accept) gets a leading `'`, which spreadsheets show as text and do not evaluate. The rule applies to
text only: numbers the registry computed itself (int, Decimal) are written as they are, so a negative
figure stays a number a spreadsheet can add up; none of them can hold a formula."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

from registry.pdf import write_pdf
from registry.report import render
from registry.report.collateral_book import CollateralBook
from registry.report.exchange_stats import ExchangeStats
from registry.report.render import WritePdf

R = TypeVar("R", CollateralBook, ExchangeStats)


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"
    PDF = "pdf"


MEDIA_TYPES = {
    Format.JSON: "application/json",
    Format.CSV: "text/csv; charset=utf-8",
    Format.PDF: "application/pdf",
}


@dataclass(frozen=True, slots=True)
class Document:
    data: bytes
    media_type: str
    filename: str


def collateral_book_document(
    book: CollateralBook, fmt: Format, *, issuer: str, write: WritePdf = write_pdf
) -> Document:
    """The book in `fmt`; a PDF is made by `write` (the API's worker processes, or this thread)."""
    return _document(book, fmt, f"collateral-book-{book.as_of.isoformat()}", collateral_book_rows,
                     lambda: render.collateral_book_pdf(book, issuer, write))  # fmt: skip


def exchange_stats_document(
    stats: ExchangeStats, fmt: Format, *, issuer: str, write: WritePdf = write_pdf
) -> Document:
    name = f"exchange-{stats.period_from.isoformat()}-{stats.period_to.isoformat()}"
    return _document(
        stats, fmt, name, exchange_stats_rows, lambda: render.exchange_stats_pdf(stats, issuer, write)
    )


def _document(report: R, fmt: Format, stem: str, rows: Callable[[R], list[dict[str, Any]]],
              pdf: Callable[[], bytes]) -> Document:  # fmt: skip
    if fmt is Format.JSON:
        data = to_json(report)
    elif fmt is Format.CSV:
        data = to_csv(rows(report)).encode()
    else:
        data = pdf()
    return Document(data, MEDIA_TYPES[fmt], f"{stem}.{fmt.value}")


def _plain(value: object) -> object:
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in a report")


def to_json(report: CollateralBook | ExchangeStats) -> bytes:
    """UTF-8 JSON, indented for a person reading a file, the same bytes from the API and the CLI."""
    return (json.dumps(asdict(report), ensure_ascii=False, indent=2, default=_plain) + "\n").encode()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def cell(value: object) -> object:
    """A value as a CSV cell: text a spreadsheet would evaluate is quoted with a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(rows: Sequence[Mapping[str, object]]) -> str:
    """UTF-8 CSV text with a byte-order mark, so that spreadsheet programs read Chinese names right."""
    out = io.StringIO()
    # RFC 4180 line ends: the csv module then quotes a cell holding CR as well as LF (with "\n" alone, a
    # stray CR from old data would split a row for some readers).
    writer = csv.DictWriter(out, fieldnames=[str(cell(name)) for name in rows[0]], lineterminator="\r\n")
    writer.writeheader()
    writer.writerows([{str(cell(k)): cell(v) for k, v in row.items()} for row in rows])
    return "\ufeff" + out.getvalue()


# Every section of the book in one table: its lines and total (by credit type, project type, vintage),
# the maturity ladder and the coverage bands, each row naming its section and, for the last two, its bucket.
BOOK_COLUMNS = ("section", "credit_type", "project_type", "vintage", "bucket", "pledges", "units",
                "collateral_value", "outstanding_principal", "coverage_ratio", "at_warning", "at_disposal",
                "unvalued")  # fmt: skip


def collateral_book_rows(book: CollateralBook) -> list[dict[str, Any]]:
    blank = dict.fromkeys(BOOK_COLUMNS)
    rows = [{**blank, "section": "group", **asdict(line)} for line in book.lines]
    rows.append({**blank, "section": "total", **asdict(book.total)})
    rows += [{**blank, "section": "maturity", "bucket": rung.bucket, "pledges": rung.pledges,
              "collateral_value": rung.collateral_value, "outstanding_principal": rung.outstanding_principal}
             for rung in book.ladder]  # fmt: skip
    rows += [{**blank, "section": "coverage", "bucket": band.band, "pledges": band.pledges}
             for band in book.coverage_bands]  # fmt: skip
    return rows


def exchange_stats_rows(stats: ExchangeStats) -> list[dict[str, Any]]:
    figures: list[tuple[str, Any]] = [
        ("registered", stats.registered),
        ("released", stats.released),
        ("disposed", stats.disposed),
        ("financing_secured", stats.financing_secured),
        ("confirmation_hours_avg", stats.confirmation_hours_avg),
        ("confirmation_hours_median", stats.confirmation_hours_median),
        *((f"units_frozen:{code}", units) for code, units in stats.units_frozen.items()),
        *((f"largest_pledgor:{p.name}", p.units) for p in stats.largest_pledgors),
        *((f"largest_pledgor_pledges:{p.name}", p.pledges) for p in stats.largest_pledgors),
        *((f"registered:{m.month}", m.registered) for m in stats.months),
        *((f"financing:{m.month}", m.financing) for m in stats.months),
    ]
    return [{"figure": name, "value": value} for name, value in figures]
