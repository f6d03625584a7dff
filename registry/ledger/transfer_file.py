"""Reading a day's settled trades from a CSV file for `registry transfers import FILE`: one settlement batch.

A header, then one transfer a row: `from_account_id,to_account_id,credit_type` and either `quantity`
(lowest serials first) or `serial_start,serial_end` (a named block); `ref` optional (kept in the trail).
Every row is checked before anything is applied; a row that cannot be read is named with its line number
and field, as the settlement's own refusals are (`settlement.LineError`), and nothing is applied."""

from __future__ import annotations

import csv
from pathlib import Path
from uuid import UUID

from registry import text
from registry.ledger.service import Selection, SerialRange
from registry.ledger.settlement import Line, LineError

REQUIRED = ("from_account_id", "to_account_id", "credit_type")


class BadTransferFile(Exception):
    """The file cannot be read at all (missing, not UTF-8, no header): no line numbers to give."""


def read_lines(path: str | Path) -> tuple[list[Line], list[int], list[LineError]]:
    """The batch's lines, each one's line number in the file, and every row that cannot be read (its line
    number in the file, as a person counts them with the header as line 1)."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise BadTransferFile(f"line 1: missing column(s) {', '.join(missing)}")
            lines: list[Line] = []
            numbers: list[int] = []
            errors: list[LineError] = []
            for row in reader:
                try:
                    lines.append(_line(row))
                    numbers.append(reader.line_num)
                except _BadCell as bad:
                    errors.append(LineError(reader.line_num, "validation_error", bad.field, str(bad), None))
            return lines, numbers, errors
    except OSError as exc:
        raise BadTransferFile(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise BadTransferFile(f"not UTF-8 text: {exc}") from exc


class _BadCell(ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


def _cell(row: dict[str, str], name: str) -> str:
    return (row.get(name) or "").strip()


def _uuid(row: dict[str, str], name: str) -> UUID:
    try:
        return UUID(_cell(row, name))
    except ValueError:
        raise _BadCell(name, "not an account id") from None


def _int(row: dict[str, str], name: str) -> int:
    value = _cell(row, name)
    if not value.isdigit() or not value.isascii():
        raise _BadCell(name, "a whole number is needed")
    return int(value)


def _line(row: dict[str, str]) -> Line:
    source, target = _uuid(row, "from_account_id"), _uuid(row, "to_account_id")
    credit_type = _cell(row, "credit_type")
    if not credit_type:
        raise _BadCell("credit_type", "empty")
    ref = _cell(row, "ref") or None
    if ref is not None:
        try:
            ref = text.clean(ref, max_length=text.SHORT_MAX)
        except text.BadText as bad:
            raise _BadCell("ref", str(bad)) from None
    named = _cell(row, "serial_start") or _cell(row, "serial_end")
    if _cell(row, "quantity") and named:
        raise _BadCell("quantity", "give either a quantity or serial_start and serial_end")
    if named:
        block = SerialRange(credit_type, _int(row, "serial_start"), _int(row, "serial_end"))
        return Line(source, target, Selection(blocks=[block]), ref)
    return Line(source, target, Selection(credit_type=credit_type, quantity=_int(row, "quantity")), ref)
