"""`registry report collateral-book|exchange`: the reports as the API gives them, byte for byte (one
exporter, registry/report/export.py), to a file or standard output."""

from __future__ import annotations

import argparse
from uuid import UUID

from sqlmodel import Session, col, select

from registry.cli.common import Refused, Subcommands, day_arg, session, write_out
from registry.clock import SystemClock
from registry.config import Settings
from registry.ledger.models import Party, PartyKind
from registry.principal import Principal, Role


def find_bank(s: Session, given: str) -> UUID:
    """A bank by its id, its full name, or the one bank whose name begins with (or contains) the words
    given (`蜀都银行成都分行` for `蜀都银行成都分行 Shudu Bank Chengdu Branch`); otherwise a refusal naming
    the banks there are."""
    try:
        ident = UUID(given)
    except ValueError:
        ident = None
    banks = s.exec(select(Party).where(Party.kind == PartyKind.BANK).order_by(col(Party.name))).all()
    if ident is not None:
        if any(b.id == ident for b in banks):
            return ident
        raise Refused(f"--bank-id: no bank has the id {ident}")
    wanted = given.strip().casefold()
    for matches in ([b for b in banks if b.name.casefold() == wanted],
                    [b for b in banks if b.name.casefold().startswith(wanted)],
                    [b for b in banks if wanted in b.name.casefold()]):  # fmt: skip
        if len(matches) == 1:
            return matches[0].id
        if len(matches) > 1:
            names = "; ".join(b.name for b in matches)
            raise Refused(
                f"--bank-id: {given!r} names {len(matches)} banks ({names}): give more of the name, or the id"
            )
    known = "; ".join(f"{b.name} ({b.id})" for b in banks) or "none yet"
    raise Refused(f"--bank-id: no bank is called {given!r}; the banks are: {known}")


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Reports as an auditor sees them (every bank's), read in one transaction."""
    from registry.calendar import exchange_day
    from registry.ledger.repository import exchange_name
    from registry.report import export
    from registry.report.collateral_book import collateral_book
    from registry.report.exchange_stats import exchange_stats

    reader = Principal(party_id=None, role=Role.AUDITOR, operator="cli")
    today = exchange_day(SystemClock().now())
    fmt = export.Format(args.format)
    with session(settings) as s:  # the figures in one transaction; the document made after it
        issuer = exchange_name(s)
        if args.report_command == "collateral-book":
            bank_id = find_bank(s, args.bank_id)
            book = collateral_book(s, reader, as_of=args.as_of, bank_id=bank_id, today=today)
        else:
            stats = exchange_stats(s, reader, period_from=args.period_from, period_to=args.period_to,
                                   today=today)  # fmt: skip
    if args.report_command == "collateral-book":
        document = export.collateral_book_document(book, fmt, issuer=issuer)
    else:
        document = export.exchange_stats_document(stats, fmt, issuer=issuer)
    write_out(document.data, args.out, f"{args.report_command} ({args.format})")
    return 0


def register(sub: Subcommands) -> None:
    reports = sub.add_parser("report", help="quarterly reports").add_subparsers(
        dest="report_command", required=True
    )
    for name, helptext in (("collateral-book", "a bank's collateral book as of a day"),
                           ("exchange", "the exchange's pledge statistics for a period")):  # fmt: skip
        sp = reports.add_parser(name, help=helptext)
        if name == "collateral-book":
            sp.add_argument("--bank-id", "--bank", dest="bank_id", required=True,
                            help="the bank's party id or its name (the beginning of it is enough)")  # fmt: skip
            sp.add_argument("--as-of", required=True, type=day_arg, help="YYYY-MM-DD (Beijing)")
        else:
            sp.add_argument("--from", dest="period_from", required=True, type=day_arg, help="YYYY-MM-DD")
            sp.add_argument("--to", dest="period_to", required=True, type=day_arg, help="YYYY-MM-DD")
        sp.add_argument("--format", choices=["json", "csv", "pdf"], default="json")
        sp.add_argument("-o", "--out", default="-", help="file to write; '-' for standard output")
        sp.set_defaults(func=cmd_report)
