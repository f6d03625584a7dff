"""Reading a CSV of daily trade prints, every row checked before anything is loaded.

A bad row is refused in words: its line, its column and what is wrong with the value, e.g.
`line 3, price: 'sixty' is not a price (a positive number with at most two decimals, like 64.50)`."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from registry.valuation.models import TradeKind
from registry.valuation.prices import Trade

COLUMNS = ("credit_type", "trade_date", "price", "volume")


class BadPrintFile(Exception):
    """A file or a row that cannot be loaded, said in words (the row by its line number)."""


@dataclass(frozen=True, slots=True)
class Prints:
    trades: list[Trade]
    lines: list[int]  # the file's line number of each trade, for messages about it later


def count_rows(path: str | Path) -> int:
    """Data rows in the file (lines after the header), for a progress bar; cheap next to parsing them."""
    try:
        with Path(path).open("rb") as handle:
            return max(sum(1 for _ in handle) - 1, 0)
    except OSError as exc:
        raise BadPrintFile(_os_error(exc)) from exc


def read_trades(path: str | Path, *, on_rows: Callable[[int], None] | None = None) -> Prints:
    """Every row parsed and checked; `on_rows(n)` is told as rows are read (every 1,000 and at the end)."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            return _read(csv.DictReader(handle), on_rows or (lambda _n: None))
    except OSError as exc:
        raise BadPrintFile(_os_error(exc)) from exc
    except UnicodeDecodeError as exc:
        raise BadPrintFile(f"not UTF-8 text (byte {exc.start} cannot be read)") from exc


def _os_error(exc: OSError) -> str:
    return f"cannot read the file: {exc.strerror or exc}"


def _read(reader: csv.DictReader[str], on_rows: Callable[[int], None]) -> Prints:
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise BadPrintFile(f"line 1: the header has no column {', '.join(missing)} "
                           f"(it needs {','.join(COLUMNS)}[,kind])")  # fmt: skip
    trades: list[Trade] = []
    lines: list[int] = []
    seen: dict[tuple[str, str, date], int] = {}
    for row in reader:
        line = reader.line_num
        trade = parse_row(row, line)
        key = (trade.credit_type, trade.kind, trade.trade_date)
        if key in seen:
            raise BadPrintFile(f"line {line}: a second {trade.kind} print for {trade.credit_type} on "
                               f"{trade.trade_date} (the first is on line {seen[key]})")  # fmt: skip
        seen[key] = line
        trades.append(trade)
        lines.append(line)
        if len(trades) % 1000 == 0:
            on_rows(1000)
    on_rows(len(trades) % 1000)
    return Prints(trades, lines)


def parse_row(row: dict[str, str | None], line: int) -> Trade:
    def cell(name: str) -> str:
        value = (row.get(name) or "").strip()
        if not value and name in COLUMNS:
            raise BadPrintFile(f"line {line}, {name}: empty")
        return value

    credit_type = cell("credit_type")
    given = cell("trade_date")
    try:
        trade_date = date.fromisoformat(given)
    except ValueError:
        raise BadPrintFile(f"line {line}, trade_date: {given!r} is not a day (YYYY-MM-DD)") from None
    price = _price(cell("price"), line)
    volume = _volume(cell("volume"), line)
    kind = cell("kind") or TradeKind.LISTED
    if kind not in frozenset(TradeKind):  # StrEnum: its members equal their values
        raise BadPrintFile(f"line {line}, kind: {kind!r} is not a kind ({' or '.join(TradeKind)})")
    return Trade(credit_type, trade_date, price, volume, TradeKind(kind))


def _price(given: str, line: int) -> Decimal:
    try:
        price = Decimal(given)
    except InvalidOperation:
        price = Decimal("NaN")
    exponent = price.as_tuple().exponent
    if not price.is_finite() or price <= 0 or not isinstance(exponent, int) or exponent < -2:
        raise BadPrintFile(f"line {line}, price: {given!r} is not a price "
                           "(a positive number with at most two decimals, like 64.50)")  # fmt: skip
    return price


def _volume(given: str, line: int) -> int:
    if not given.isascii() or not given.isdigit() or int(given) <= 0:
        raise BadPrintFile(
            f"line {line}, volume: {given!r} is not a volume (a positive whole number of units)"
        )
    return int(given)
