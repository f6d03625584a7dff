"""Reports as CSV: the one exporter the API and the command line both call.

Every cell of text is written so that no spreadsheet runs it (OWASP "CSV injection"): text beginning
with `=`, `+`, `-`, `@`, a tab or a carriage return (or their full-width forms, which some spreadsheets
also accept) gets a leading `'`, which spreadsheets show as text and do not evaluate. The rule applies to
text only: numbers the registry computed itself (int, Decimal) are written as they are, so a negative
figure stays a number a spreadsheet can add up; none of them can hold a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from registry.report.collateral_book import CollateralBook
from registry.report.exchange_stats import ExchangeStats

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


def collateral_book_rows(book: CollateralBook) -> list[dict[str, Any]]:
    rows = [{"section": "group", **asdict(line)} for line in book.lines]
    rows.append({"section": "total", **asdict(book.total)})
    rows += [
        {"section": "maturity", "credit_type": None, "project_type": rung.bucket, "vintage": None,
         "pledges": rung.pledges, "units": None, "collateral_value": rung.collateral_value,
         "outstanding_principal": rung.outstanding_principal, "coverage_ratio": None, "at_warning": None,
         "at_disposal": None, "unvalued": None}
        for rung in book.ladder
    ]  # fmt: skip
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
        *((f"financing:{m.month}", m.financing) for m in stats.months),
    ]
    return [{"figure": name, "value": value} for name, value in figures]
