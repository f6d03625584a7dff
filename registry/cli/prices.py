"""`registry prices import FILE.csv`: daily prints, all rows or none."""

from __future__ import annotations

import argparse
import re

from registry.cli.common import Refused, Subcommands, actor, progress, session
from registry.config import Settings
from registry.errors import InvalidInput

CHUNK = 1000  # prints per statement: small enough for the bar to move, large enough to stay set-based
_TRADE_FIELD = re.compile(r"^trades\[(\d+)\](?:\.(\w+))?$")


def cmd_prices_import(args: argparse.Namespace, settings: Settings) -> int:
    """CSV with a header: credit_type,trade_date,price,volume[,kind]. One bad row: nothing is loaded."""
    from registry.valuation import prices
    from registry.valuation.csv_import import BadPrintFile, count_rows, read_trades
    from registry.valuation.service import revalue

    try:
        rows = count_rows(args.file)
        with progress("checking", rows) as advance:
            read = read_trades(args.file, on_rows=advance)
    except BadPrintFile as exc:
        raise Refused(f"{args.file}: {exc}; nothing loaded") from None
    trades, total = read.trades, len(read.trades)
    now = actor()
    with session(settings) as s, progress("loading", total) as advance:  # one transaction: all or none
        inserted = replaced = 0
        types: set[int] = set()
        for start in range(0, total, CHUNK):
            try:
                loaded = prices.record_trades(s, now, trades[start : start + CHUNK])
            except InvalidInput as exc:
                raise Refused(f"{args.file}: {_where(exc, read.lines, start)}; nothing loaded") from None
            inserted, replaced = inserted + loaded.inserted, replaced + loaded.replaced
            types.update(loaded.credit_type_ids)
            advance(min(CHUNK, total - start))
        valued = revalue(s, now=now.at, window_days=settings.vwap_days, credit_type_ids=sorted(types))
    print(f"{inserted} prints loaded, {replaced} replaced; {valued.valued} active pledges revalued")
    return 0


def _where(exc: InvalidInput, lines: list[int], start: int) -> str:
    """The loader's refusal ("trades[12].credit_type") as the file's line and column."""
    found = _TRADE_FIELD.match(exc.field)
    if found is None:
        return exc.detail
    line = lines[start + int(found.group(1))]
    return f"line {line}, {found.group(2)}: {exc.detail}" if found.group(2) else f"line {line}: {exc.detail}"


def register(sub: Subcommands) -> None:
    price = sub.add_parser("prices", help="trade prices").add_subparsers(dest="prices_command", required=True)
    sp = price.add_parser("import", help="load a CSV of daily prints (all rows or none)")
    sp.add_argument("file")
    sp.set_defaults(func=cmd_prices_import)
