"""`registry jobs …`: run a scheduled job now."""

from __future__ import annotations

import argparse

from registry.cli.common import Subcommands, actor, database, session
from registry.clock import SystemClock
from registry.config import Settings
from registry.db import unit_of_work

BATCH = 500


def cmd_expire_holds(args: argparse.Namespace, settings: Settings) -> int:
    from registry.pledge.service import expire_lapsed

    total = 0
    with database(settings) as engine:
        while True:  # in batches, each its own transaction
            with unit_of_work(engine) as s:
                done = expire_lapsed(s, actor(), limit=BATCH)
            total += done
            if done < BATCH:
                break
    print(f"{total} unconfirmed request(s) lapsed; their held units are available again")
    return 0


def cmd_revalue(args: argparse.Namespace, settings: Settings) -> int:
    from registry.valuation.jobs import daily_revaluation

    with session(settings) as s:
        valued = daily_revaluation(settings)(s, actor())
    print(f"{valued} active pledges revalued; maturity alerts refreshed")
    return 0


def cmd_deliver(args: argparse.Namespace, settings: Settings) -> int:
    from registry.alert.delivery import Policy, deliver_due

    policy = Policy.from_settings(settings)
    with database(settings, pool_size=policy.concurrency) as engine:
        tally = deliver_due(lambda: unit_of_work(engine), SystemClock(), policy)
    print(f"{tally.delivered} webhook deliveries made, {tally.failed} failed (retried later)")
    return 0


def register(sub: Subcommands) -> None:
    jobs = sub.add_parser("jobs", help="run a scheduled job now").add_subparsers(dest="job", required=True)
    jobs.add_parser("expire-holds", help="lapse unconfirmed pledge requests whose hold expired").set_defaults(
        func=cmd_expire_holds
    )
    jobs.add_parser("revalue", help="value every active pledge and refresh alerts").set_defaults(
        func=cmd_revalue
    )
    jobs.add_parser("deliver-webhooks", help="send due webhook deliveries").set_defaults(func=cmd_deliver)
