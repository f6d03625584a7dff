"""Reading a CSV of daily trade prints, every row checked before anything is loaded."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from registry.valuation.prices import Trade

COLUMNS = ("credit_type", "trade_date", "price", "volume")


class BadPrintFile(Exception):
    """A row that cannot be loaded, named by its line number."""


def read_trades(path: str | Path) -> list[Trade]:
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            return _read(csv.DictReader(handle))
    except OSError as exc:
        raise BadPrintFile(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise BadPrintFile(f"not UTF-8 text: {exc}") from exc


def _read(reader: csv.DictReader[str]) -> list[Trade]:
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise BadPrintFile(f"line 1: missing column(s) {', '.join(missing)}")
    trades: list[Trade] = []
    seen: dict[tuple[str, str, date], int] = {}
    for row in reader:
        line = reader.line_num
        trade = _parse(row, line)
        key = (trade.credit_type, trade.kind, trade.trade_date)
        if key in seen:
            raise BadPrintFile(f"line {line}: a second {trade.kind} print for {trade.credit_type} on "
                               f"{trade.trade_date} (first on line {seen[key]})")  # fmt: skip
        seen[key] = line
        trades.append(trade)
    return trades


def _parse(row: dict[str, str], line: int) -> Trade:
    try:
        credit_type = (row["credit_type"] or "").strip()
        trade_date = date.fromisoformat((row["trade_date"] or "").strip())
        price = Decimal((row["price"] or "").strip())
        volume = int((row["volume"] or "").strip())
        kind = (row.get("kind") or "listed").strip() or "listed"
    except (ValueError, InvalidOperation) as exc:
        raise BadPrintFile(f"line {line}: {exc}") from exc
    if not credit_type:
        raise BadPrintFile(f"line {line}: credit_type is empty")
    if not price.is_finite() or price <= 0 or price.as_tuple().exponent < -2:  # type: ignore[operator]
        raise BadPrintFile(f"line {line}: price must be positive with at most two decimals")
    if volume <= 0:
        raise BadPrintFile(f"line {line}: volume must be positive")
    if kind not in ("listed", "block"):
        raise BadPrintFile(f"line {line}: kind is listed or block")
    return Trade(credit_type, trade_date, price, volume, kind)
