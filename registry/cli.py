"""The `registry` command: serve, migrate, demo, keys, audit verify, check, jobs, prices, transfers,
certificates."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from registry import text
from registry.clock import SystemClock
from registry.config import Settings, get_settings
from registry.db import APP_ROLE, as_role, database_url, describe, make_engine, migrate, unit_of_work
from registry.errors import RegistryError
from registry.principal import SYSTEM, Actor, Role


def _actor() -> Actor:
    return Actor(SYSTEM, SystemClock().now(), request_id="cli")


def _url(settings: Settings) -> str:
    """The database, migrated to head (a no-op when it is): every command works on an empty one."""
    url = database_url(settings)
    print(f"database: {describe(url)}", file=sys.stderr)
    migrate(url)
    return url


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    _url(settings)
    print("migrated to head")
    return 0


def _where(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings with --host/--port applied, so that printed links and QR codes name the served port."""
    host = getattr(args, "host", None) or settings.host
    port = getattr(args, "port", None) or settings.port
    return settings.model_copy(update={"host": host, "port": port})


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from registry import demo

    settings = _where(args, settings)
    url = _url(settings)
    engine = make_engine(url, pool_size=1)
    actor = _actor()
    with unit_of_work(engine) as session:
        loaded = demo.load(session, actor)
        keys = demo.issue_keys(session, actor)
        people = demo.console_users(session, actor)
        sample = demo.sample_certificate(session)
    engine.dispose()
    print("demo data loaded" if loaded else "demo data was already there; new keys below")
    print("API keys (shown once; send as 'Authorization: Bearer <key>'):")
    for k in keys:
        print(f"  {k.role.value:<9} {k.party}\n            {k.key}")
    print(f"Web console: {settings.base_url()}/console/ — users and passwords (shown once):")
    for person in people:
        print(f"  {person.username:<16} {person.password:<18} {person.party}")
    if sample is not None:
        from registry.certificate.render import verify_url

        print("A pledge certificate anyone can verify (no key; open it in a browser):")
        print(f"  {verify_url(settings.base_url(), *sample)}")
    if args.serve:
        return cmd_serve(args, settings, url=url)
    return 0


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn believes X-Forwarded-For from 127.0.0.1 (or FORWARDED_ALLOW_IPS) unless told otherwise, and
    the throttles count clients by address: any local caller could claim a new client per guess. Only the
    proxies REGISTRY_TRUSTED_PROXIES names are believed; none by default."""
    trusted = settings.trusted_proxies.strip()
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}


def cmd_serve(args: argparse.Namespace, settings: Settings, *, url: str | None = None) -> int:
    import uvicorn

    url = url or _url(settings)
    # Worker processes connect to the server this process resolved (and, when embedded, keeps alive),
    # as the restricted application role when the server is the embedded one.
    os.environ["DATABASE_URL"] = url
    if not settings.database_url and not settings.app_database_url:
        os.environ["REGISTRY_APP_DATABASE_URL"] = as_role(url, APP_ROLE)
    settings = _where(args, settings)
    host, port = settings.host, settings.port
    # The worker processes read their settings from the environment: the same host and port.
    os.environ["REGISTRY_HOST"], os.environ["REGISTRY_PORT"] = host, str(port)
    print(f"registry serving at http://{host}:{port}  (API docs: http://{host}:{port}/docs)", flush=True)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        access_log=args.access_log,
        **proxy_options(settings),
    )
    return 0


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    from registry.access import service as access
    from registry.ledger import repository as repo
    from registry.ledger import service as ledger
    from registry.ledger.models import PartyKind

    role = Role(args.role)
    # The API's text rule: a party's name and an operator end up in the audit trail and on certificates.
    party_name = args.party_name and text.checked(
        args.party_name, field="--party-name", max_length=text.NAME_MAX
    )
    operator = args.operator and text.checked(args.operator, field="--operator", max_length=text.SHORT_MAX)
    engine = make_engine(_url(settings), pool_size=1)
    actor = _actor()
    with unit_of_work(engine) as session:
        if args.party_id:
            party = repo.get_party(session, UUID(args.party_id))
            if party is None:
                print(f"no party {args.party_id}", file=sys.stderr)
                return 2
        else:
            party = repo.get_party_by_name(session, party_name)
            if party is None:
                kind = access.DEFAULT_PARTY_KIND[role]
                party = ledger.create_party(
                    session, actor, name=party_name, kind=PartyKind(kind), credit_code=None
                )
                print(f"created party {party.name} ({kind.value}) {party.id}", file=sys.stderr)
        issued = access.create_key(session, party=party, role=role, operator=operator, now=actor.at)
    engine.dispose()
    print(f"key {issued.record.id} for {party.name} as {role.value}; shown once:", file=sys.stderr)
    print(issued.key)
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("the passwords differ")
    return first


def cmd_users_create(args: argparse.Namespace, settings: Settings) -> int:
    from registry.ledger import repository as repo
    from registry.users import service as users

    name = text.checked(args.name or args.username, field="--name", max_length=text.NAME_MAX)
    engine = make_engine(_url(settings), pool_size=1)
    password = _password(args)
    with unit_of_work(engine) as session:
        party = repo.get_party(session, UUID(args.party_id)) if args.party_id else None
        party = party or (repo.get_party_by_name(session, args.party_name) if args.party_name else None)
        if party is None:
            print(f"no party {args.party_id or args.party_name}", file=sys.stderr)
            return 2
        user = users.create_user(session, username=args.username, display_name=name,
                                 party=party, role=Role(args.role), password=password, now=_actor().at)  # fmt: skip
    engine.dispose()
    print(f"user {user.username} ({user.role}) for {party.name}")
    return 0


def cmd_users_disable(args: argparse.Namespace, settings: Settings) -> int:
    from registry.users import service as users

    engine = make_engine(_url(settings), pool_size=1)
    with unit_of_work(engine) as session:
        done = users.disable(session, args.username, _actor().at)
    engine.dispose()
    print("disabled; their sessions are ended" if done else "no such active user")
    return 0 if done else 1


def cmd_users_password(args: argparse.Namespace, settings: Settings) -> int:
    from registry.users import service as users

    engine = make_engine(_url(settings), pool_size=1)
    password = _password(args)
    with unit_of_work(engine) as session:
        done = users.set_password(session, args.username, password, _actor().at)
    engine.dispose()
    print("password set; their sessions are ended" if done else "no such user")
    return 0 if done else 1


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from registry.access import service as access

    engine = make_engine(_url(settings), pool_size=1)
    with unit_of_work(engine) as session:
        done = access.revoke(session, key_id=UUID(args.key_id), now=_actor().at)
    engine.dispose()
    print("revoked" if done else "no such active key")
    return 0 if done else 1


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from registry.audit.service import verify_chains

    engine = make_engine(_url(settings), pool_size=1)
    result = verify_chains(engine)
    engine.dispose()
    print(f"events: {result.events}  chains: {result.chains}  head_hash: {result.head_hash}")
    if result.ok:
        print("ok: every chain verifies")
        return 0
    bad = result.first_bad_event
    assert bad is not None
    print(
        f"TAMPERED: first bad event {bad.id} ({bad.describe_chain()}, seq {bad.seq}): {bad.problem}; "
        f"{result.bad_events} chain(s) broken"
    )
    return 1


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from registry import check
    from registry.ledger.consistency import CHECKS

    began = time.perf_counter()
    engine = make_engine(_url(settings), pool_size=2)
    report = check.run(engine)
    engine.dispose()
    for problem in report.problems:
        print(f"FAIL {problem}")
    if args.timings:
        for title, seconds in sorted(report.timings.items(), key=lambda t: -t[1]):
            print(f"  {seconds:8.2f} s  {title}", file=sys.stderr)
    verdict = "ok" if report.ok else "inconsistent"
    print(f"{verdict}: {len(CHECKS)} checks, {report.events} audit events in {report.chains} chains "
          f"recomputed (head {report.head_hash[:16]}…) in {time.perf_counter() - began:.1f} s")  # fmt: skip
    return 0 if report.ok else 1


def cmd_expire_holds(args: argparse.Namespace, settings: Settings) -> int:
    from registry.pledge.service import expire_lapsed

    engine = make_engine(_url(settings), pool_size=1)
    total = 0
    while True:  # in batches, each its own transaction
        with unit_of_work(engine) as session:
            done = expire_lapsed(session, _actor(), limit=500)
        total += done
        if done < 500:
            break
    engine.dispose()
    print(f"{total} unconfirmed request(s) lapsed; their held units are available again")
    return 0


def cmd_prices_import(args: argparse.Namespace, settings: Settings) -> int:
    """CSV with a header: credit_type,trade_date,price,volume[,kind]. One bad row: nothing is loaded."""
    from registry.valuation import prices
    from registry.valuation.csv_import import BadPrintFile, read_trades
    from registry.valuation.service import revalue

    try:
        trades = read_trades(args.file)
    except BadPrintFile as exc:
        print(f"{args.file}: {exc}; nothing loaded", file=sys.stderr)
        return 2
    engine = make_engine(_url(settings), pool_size=1)
    actor = _actor()
    total, chunk = len(trades), 5000
    with unit_of_work(engine) as session:  # one transaction: all rows or none
        inserted = replaced = 0
        types: set[int] = set()
        for start in range(0, total, chunk):
            loaded = prices.record_trades(session, actor, trades[start : start + chunk])
            inserted, replaced = inserted + loaded.inserted, replaced + loaded.replaced
            types.update(loaded.credit_type_ids)
            _progress(min(start + chunk, total), total)
        valued = revalue(session, now=actor.at, window_days=settings.vwap_days, credit_type_ids=sorted(types))
    engine.dispose()
    print(f"{inserted} prints loaded, {replaced} replaced; {valued.valued} active pledges revalued")
    return 0


def cmd_transfers_import(args: argparse.Namespace, settings: Settings) -> int:
    """A day's settled trades from a CSV file, as one settlement batch: every row applies or none does."""
    from registry.ledger import settlement
    from registry.ledger.transfer_file import BadTransferFile, read_lines

    try:
        lines, numbers, errors = read_lines(args.file)
    except BadTransferFile as exc:
        print(f"{args.file}: {exc}; nothing applied", file=sys.stderr)
        return 2
    if not errors and not lines:
        print(f"{args.file}: no transfers; nothing applied", file=sys.stderr)
        return 2
    if not errors:
        engine = make_engine(_url(settings), pool_size=1)
        try:
            with unit_of_work(engine) as session:  # one transaction: all rows or none
                moved = settlement.settle(session, _actor(), lines)
        except settlement.BatchRefused as refused:  # the batch's line n is the file's line numbers[n - 1]
            errors = [e if e.line < 1 else settlement.LineError(numbers[e.line - 1], e.code, e.field, e.detail, e.ref)
                      for e in refused.errors]  # fmt: skip
        finally:
            engine.dispose()
    if errors:
        for e in errors:
            print(f"{args.file}: line {e.line}{f' ({e.ref})' if e.ref else ''}: {e.code}"
                  f"{f' [{e.field}]' if e.field else ''}: {e.detail}", file=sys.stderr)  # fmt: skip
        print(f"{len(errors)} line(s) cannot apply; nothing applied", file=sys.stderr)
        return 2
    print(f"{len(moved)} transfers applied, {sum(m.quantity for m in moved)} units moved")
    return 0


def _progress(done: int, total: int) -> None:
    width = 40
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, file=sys.stderr, flush=True)


def cmd_revalue(args: argparse.Namespace, settings: Settings) -> int:
    from registry.scheduler import revalue_job

    engine = make_engine(_url(settings), pool_size=1)
    with unit_of_work(engine) as session:
        valued = revalue_job(settings)(session, _actor())
    engine.dispose()
    print(f"{valued} active pledges revalued; maturity alerts refreshed")
    return 0


def cmd_deliver(args: argparse.Namespace, settings: Settings) -> int:
    from registry.alert.delivery import Policy, deliver_due

    policy = Policy.from_settings(settings)
    engine = make_engine(_url(settings), pool_size=policy.concurrency)
    tally = deliver_due(lambda: unit_of_work(engine), SystemClock(), policy)
    engine.dispose()
    print(f"{tally.delivered} webhook deliveries made, {tally.failed} failed (retried later)")
    return 0


def cmd_certificates_render(args: argparse.Namespace, settings: Settings) -> int:
    from registry.certificate.renderer import Renderer
    from registry.certificate.service import render_pending

    engine = make_engine(_url(settings), pool_size=1)
    renderer = Renderer(settings.base_url(), workers=0)
    total = 0
    while done := render_pending(engine, renderer, SystemClock().now, limit=50):
        total += done
    engine.dispose()
    print(f"{total} certificate(s) rendered and stored")
    return 0


def cmd_certificates_get(args: argparse.Namespace, settings: Settings) -> int:
    from registry.certificate import service as certificates
    from registry.certificate.renderer import Renderer

    engine = make_engine(_url(settings), pool_size=1)
    with unit_of_work(engine) as session:
        found = certificates.by_number(session, args.number)
        if found is None:
            print(f"no certificate {args.number}", file=sys.stderr)
            return 1
        pdf = certificates.pdf_for(session, found, Renderer(settings.base_url(), workers=0), _actor().at)
    engine.dispose()
    _write_out(pdf, args.out, f"{found.number} ({found.status})")
    return 0


def _write_out(data: bytes, out: str, what: str) -> None:
    """To a file (saying so on stderr), or to standard output for '-'."""
    if out == "-":
        sys.stdout.buffer.write(data)
        return
    with open(out, "wb") as target:
        target.write(data)
    print(f"{out}: {what}, {len(data)} bytes", file=sys.stderr)


def _users_parser(sub: Any) -> None:
    people = sub.add_parser("users", help="web console users").add_subparsers(
        dest="users_command", required=True
    )
    sp = people.add_parser("create", help="a user of the web console, acting for a party")
    sp.add_argument("username", help="2-64 of a-z 0-9 . _ -; recorded as the operator in the audit trail")
    sp.add_argument("--role", required=True, choices=["exchange", "bank", "holder", "auditor"])
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--party-name")
    who.add_argument("--party-id")
    sp.add_argument("--name", help="the person's name as pages show it")
    sp.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sp.set_defaults(func=cmd_users_create)
    sp = people.add_parser("disable", help="disable a user and end their sessions")
    sp.add_argument("username")
    sp.set_defaults(func=cmd_users_disable)
    sp = people.add_parser("password", help="set a new password (ends the user's sessions)")
    sp.add_argument("username")
    sp.add_argument("--password-stdin", action="store_true")
    sp.set_defaults(func=cmd_users_password)


def _certificates_parser(sub: Any) -> None:
    certs = sub.add_parser("certificates", help="pledge certificates").add_subparsers(
        dest="certificates_command", required=True
    )
    certs.add_parser("render", help="render and store every certificate that has no PDF yet").set_defaults(
        func=cmd_certificates_render
    )
    sp = certs.add_parser("get", help="write a certificate's PDF (as issued) to a file")
    sp.add_argument("number", help="e.g. ZY-2026-000001-01")
    sp.add_argument("-o", "--out", default="-", help="file to write; '-' for standard output")
    sp.set_defaults(func=cmd_certificates_get)


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Reports as the exchange sees them (a bank's book needs --bank-id), to a file or standard output."""
    import json
    from dataclasses import asdict
    from datetime import date

    from registry.calendar import exchange_day
    from registry.ledger.repository import exchange_name
    from registry.principal import Principal
    from registry.report import export, render
    from registry.report.collateral_book import collateral_book
    from registry.report.exchange_stats import exchange_stats

    reader = Principal(party_id=None, role=Role.AUDITOR, operator="cli")
    today = exchange_day(SystemClock().now())
    engine = make_engine(_url(settings), pool_size=1)
    with unit_of_work(engine) as session:
        if args.report_command == "collateral-book":
            report: Any = collateral_book(session, reader, as_of=date.fromisoformat(args.as_of),
                                          bank_id=UUID(args.bank_id), today=today)  # fmt: skip
            pdf: Any = render.collateral_book_pdf if args.format == "pdf" else None
            rows = export.collateral_book_rows(report) if args.format == "csv" else []
        else:
            report = exchange_stats(session, reader, period_from=date.fromisoformat(args.period_from),
                                    period_to=date.fromisoformat(args.period_to), today=today)  # fmt: skip
            pdf = render.exchange_stats_pdf if args.format == "pdf" else None
            rows = export.exchange_stats_rows(report) if args.format == "csv" else []
        issuer = exchange_name(session)
    engine.dispose()
    if pdf is not None:
        data = pdf(report, issuer)
    elif args.format == "csv":
        data = export.to_csv(rows).encode()
    else:
        data = (json.dumps(asdict(report), ensure_ascii=False, indent=2, default=str) + "\n").encode()
    _write_out(data, args.out, f"{args.report_command} ({args.format})")
    return 0


def _report_parser(sub: Any) -> None:
    reports = sub.add_parser("report", help="quarterly reports").add_subparsers(
        dest="report_command", required=True
    )
    for name, helptext in (("collateral-book", "a bank's collateral book as of a day"),
                           ("exchange", "the exchange's pledge statistics for a period")):  # fmt: skip
        sp = reports.add_parser(name, help=helptext)
        if name == "collateral-book":
            sp.add_argument("--bank-id", required=True)
            sp.add_argument("--as-of", required=True, help="YYYY-MM-DD (Beijing)")
        else:
            sp.add_argument("--from", dest="period_from", required=True, help="YYYY-MM-DD")
            sp.add_argument("--to", dest="period_to", required=True, help="YYYY-MM-DD")
        sp.add_argument("--format", choices=["json", "csv", "pdf"], default="json")
        sp.add_argument("-o", "--out", default="-", help="file to write; '-' for standard output")
        sp.set_defaults(func=cmd_report)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="registry",
        description="The pledge registry for environmental-rights "
        "credits. With no DATABASE_URL an embedded PostgreSQL is started in "
        "REGISTRY_DATA_DIR (default ./.registry-data).",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def serve_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--host", default=None, help="default REGISTRY_HOST or 127.0.0.1")
        sp.add_argument("--port", type=int, default=None, help="default REGISTRY_PORT or 8000")
        sp.add_argument("--workers", type=int, default=1)
        sp.add_argument("--access-log", action="store_true")

    sp = sub.add_parser("serve", help="migrate, then serve the HTTP API")
    serve_options(sp)
    sp.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sp = sub.add_parser("demo", help="load the demo data and print fresh API keys")
    sp.add_argument("--serve", action="store_true", help="then serve")
    serve_options(sp)
    sp.set_defaults(func=cmd_demo)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    sp = keys.add_parser("create", help="make a key; prints it once, alone on the last line")
    sp.add_argument("--role", required=True, choices=[r.value for r in Role if r is not Role.SYSTEM])
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--party-name", help="created when no party has this name")
    who.add_argument("--party-id")
    sp.add_argument("--operator", help="the person using the key (maker-checker, audit trail)")
    sp.set_defaults(func=cmd_keys_create)
    sp = keys.add_parser("revoke", help="revoke a key by its id")
    sp.add_argument("--key-id", required=True)
    sp.set_defaults(func=cmd_keys_revoke)

    _users_parser(sub)

    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    audit.add_parser("verify", help="recompute every hash chain").set_defaults(func=cmd_audit_verify)
    sp = sub.add_parser("check", help="full consistency check of the ledger and its audit trail")
    sp.add_argument("--timings", action="store_true", help="print how long each check took")
    sp.set_defaults(func=cmd_check)
    jobs = sub.add_parser("jobs", help="run a scheduled job now").add_subparsers(dest="job", required=True)
    jobs.add_parser("expire-holds", help="lapse unconfirmed pledge requests whose hold expired").set_defaults(
        func=cmd_expire_holds
    )
    jobs.add_parser("revalue", help="value every active pledge and refresh alerts").set_defaults(
        func=cmd_revalue
    )
    jobs.add_parser("deliver-webhooks", help="send due webhook deliveries").set_defaults(func=cmd_deliver)
    _certificates_parser(sub)
    _report_parser(sub)
    price = sub.add_parser("prices", help="trade prices").add_subparsers(dest="prices_command", required=True)
    sp = price.add_parser("import", help="load a CSV of daily prints (all rows or none)")
    sp.add_argument("file")
    sp.set_defaults(func=cmd_prices_import)
    moves = sub.add_parser("transfers", help="transfers").add_subparsers(
        dest="transfers_command", required=True
    )
    sp = moves.add_parser(
        "import", help="apply a CSV of a day's settled trades as one batch (all rows or none)"
    )
    sp.add_argument("file")
    sp.set_defaults(func=cmd_transfers_import)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        result: int = args.func(args, settings)
    except RegistryError as exc:  # a refusal, not a crash: say what is wrong
        print(f"error ({exc.code}): {exc.detail}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
