"""`registry transfers import FILE.csv`: a day's settled trades, every line or none."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from registry.cli.common import Refused, Subcommands, actor, session
from registry.config import Settings

if TYPE_CHECKING:
    from registry.ledger.settlement import BatchRefused


def cmd_transfers_import(args: argparse.Namespace, settings: Settings) -> int:
    """The file's trades as settlement batches in one transaction (the same blocks, locks and trail as
    `POST /v1/transfers/batch`): one line that cannot apply, and nothing moves."""
    from registry.ledger.settlement import MAX_LINES, BatchRefused, settle
    from registry.ledger.settlement_file import BadSettlementFile, read_rows, resolve

    try:
        rows = read_rows(args.file)
    except BadSettlementFile as exc:
        raise Refused(f"{args.file}: {exc}; nothing moved") from None
    if not rows:
        raise Refused(f"{args.file}: no trades in the file; nothing moved")
    moved = units = 0
    with session(settings) as s:  # one transaction: a later chunk's refusal rolls back the earlier ones
        try:
            lines = resolve(s, rows)
        except BadSettlementFile as exc:
            raise Refused(f"{args.file}: {exc}; nothing moved") from None
        for start in range(0, len(lines), MAX_LINES):
            try:
                movements = settle(s, actor(), lines[start : start + MAX_LINES])
            except BatchRefused as refused:
                raise Refused(_report(args.file, refused, [r.line for r in rows[start:]])) from None
            moved, units = moved + len(movements), units + sum(m.quantity for m in movements)
    print(f"{moved} transfers settled, {units} units moved")
    return 0


def _report(file: str, refused: BatchRefused, lines: list[int]) -> str:
    """Every failing line by the file's line number, its ref and why, as an operator reads it."""
    said = [f"  line {lines[e.line - 1] if e.line else '-'}"
            + (f" ({e.ref})" if e.ref else "") + (f", {e.field}" if e.field else "") + f": {e.detail}"
            for e in refused.errors]  # fmt: skip
    return f"{file}: {len(said)} line(s) cannot apply; nothing moved\n" + "\n".join(said)


def register(sub: Subcommands) -> None:
    group = sub.add_parser("transfers", help="transfers between accounts").add_subparsers(
        dest="transfers_command", required=True
    )
    sp = group.add_parser("import", help="settle a CSV of the day's trades (every line or none)")
    sp.add_argument("file")
    sp.set_defaults(func=cmd_transfers_import)
