"""Reading a day's settled trades from a CSV file, every row's shape checked before anything moves.

Columns (a header names them, in any order): `from_account`, `to_account`, `credit_type`, and either
`quantity` (the lowest serials first, as a transfer by quantity) or `serial_start` and `serial_end` (one
named block); `ref` is optional (your trade reference, kept in the trail). An account is named by its
number (`RA0000000001`) or its id. A bad row is refused in words with its line and column, e.g.
`line 3, quantity: 'ten' is not a whole number of units`; what the ledger refuses (too few units, a
closed account) is refused by the batch itself, with every failing line."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from sqlmodel import Session

from registry.ledger import repository as repo
from registry.ledger.service import Selection, SerialRange
from registry.ledger.settlement import Line
from registry.text import SHORT_MAX, BadText, clean

REQUIRED = ("from_account", "to_account", "credit_type")
BY_QUANTITY = ("quantity",)
BY_BLOCK = ("serial_start", "serial_end")


class BadSettlementFile(Exception):
    """A file or a row that cannot be read as settled trades, said in words (the row by its line)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One trade as written: accounts still as the file names them."""

    line: int  # the file's line number, for messages
    from_account: str
    to_account: str
    selection: Selection
    ref: str | None


def read_rows(path: str | Path) -> list[Row]:
    """Every row parsed and its shape checked (BadSettlementFile at the first bad one)."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            _check_header(reader.fieldnames or [])
            return [_row(reader.line_num, values) for values in reader]
    except OSError as exc:
        raise BadSettlementFile(f"cannot read the file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise BadSettlementFile(f"not UTF-8 text (byte {exc.start} cannot be read)") from exc
    except csv.Error as exc:
        raise BadSettlementFile(f"not CSV: {exc}") from exc


def _check_header(names: Sequence[str]) -> None:
    missing = [c for c in REQUIRED if c not in names]
    if not missing and not (set(BY_QUANTITY) <= set(names) or set(BY_BLOCK) <= set(names)):
        missing = ["quantity (or serial_start,serial_end)"]
    if missing:
        raise BadSettlementFile(
            f"line 1: the header has no column {', '.join(missing)} (it needs "
            f"{','.join(REQUIRED)},quantity[,ref] or {','.join(REQUIRED)},serial_start,serial_end[,ref])"
        )


def _row(line: int, values: dict[str | None, str | None]) -> Row:
    if None in values:
        raise BadSettlementFile(f"line {line}: more values than the header has columns")

    def cell(name: str) -> str:
        return (values.get(name) or "").strip()

    for name in REQUIRED:
        if not cell(name):
            raise BadSettlementFile(f"line {line}, {name}: empty")
    credit_type = cell("credit_type")
    if cell("quantity") and (cell("serial_start") or cell("serial_end")):
        raise BadSettlementFile(f"line {line}: give a quantity or serial_start,serial_end, not both")
    if cell("quantity"):
        selection = Selection(credit_type=credit_type, quantity=_whole(line, "quantity", cell("quantity")))
    else:
        start, end = (_whole(line, name, cell(name)) for name in BY_BLOCK)
        selection = Selection(blocks=(SerialRange(credit_type, start, end),))
    try:
        ref = clean(cell("ref"), max_length=SHORT_MAX) if cell("ref") else None
    except BadText as exc:
        raise BadSettlementFile(f"line {line}, ref: {exc}") from None
    return Row(line, cell("from_account"), cell("to_account"), selection, ref)


def _whole(line: int, name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise BadSettlementFile(f"line {line}, {name}: {value!r} is not a whole number of units")
    return int(value)


def resolve(session: Session, rows: Sequence[Row]) -> list[Line]:
    """The rows as the batch's lines, accounts named by number looked up in one query. An account the
    registry does not have is refused here, with every line that names it."""
    names = {a for r in rows for a in (r.from_account, r.to_account)}
    ids = {n: given for n in names if (given := _as_id(n)) is not None}
    numbers = sorted(names - ids.keys())
    if numbers:
        ids |= repo.account_ids_by_number(session, numbers)
    unknown = [(r.line, column, name) for r in rows
               for column, name in (("from_account", r.from_account), ("to_account", r.to_account))
               if name not in ids]  # fmt: skip
    if unknown:
        shown = "; ".join(
            f"line {line}, {column}: no account {name!r}" for line, column, name in unknown[:10]
        )
        more = f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""
        raise BadSettlementFile(shown + more)
    return [Line(ids[r.from_account], ids[r.to_account], r.selection, r.ref) for r in rows]


def _as_id(name: str) -> UUID | None:
    try:
        return UUID(name)
    except ValueError:
        return None
