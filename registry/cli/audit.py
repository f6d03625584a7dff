"""`registry audit verify` and `registry check`: the audit trail and the whole ledger, checked."""

from __future__ import annotations

import argparse
import sys
import time

from registry.cli.common import Subcommands, database
from registry.config import Settings


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from registry.audit.service import verify_chains

    with database(settings) as engine:
        result = verify_chains(engine)
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
    with database(settings, pool_size=2) as engine:
        report = check.run(engine)
    for problem in report.problems:
        print(f"FAIL {problem}")
    if args.timings:
        for title, seconds in sorted(report.timings.items(), key=lambda t: -t[1]):
            print(f"  {seconds:8.2f} s  {title}", file=sys.stderr)
    verdict = "ok" if report.ok else "inconsistent"
    print(f"{verdict}: {len(CHECKS)} checks, {report.events} audit events in {report.chains} chains "
          f"recomputed (head {report.head_hash[:16]}…) in {time.perf_counter() - began:.1f} s")  # fmt: skip
    return 0 if report.ok else 1


def register(sub: Subcommands) -> None:
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    audit.add_parser("verify", help="recompute every hash chain").set_defaults(func=cmd_audit_verify)
    sp = sub.add_parser("check", help="full consistency check of the ledger and its audit trail")
    sp.add_argument("--timings", action="store_true", help="print how long each check took")
    sp.set_defaults(func=cmd_check)
