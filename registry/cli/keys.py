"""`registry keys create|revoke`: API keys."""

from __future__ import annotations

import argparse
import sys

from registry import text
from registry.cli.common import Refused, Subcommands, actor, session, uuid_arg
from registry.config import Settings
from registry.principal import Role


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
    now = actor()
    with session(settings) as s:
        if args.party_id:
            party = repo.get_party(s, args.party_id)
            if party is None:
                raise Refused(f"no party {args.party_id}")
        else:
            party = repo.get_party_by_name(s, party_name)
            if party is None:
                kind = access.DEFAULT_PARTY_KIND[role]
                party = ledger.create_party(s, now, name=party_name, kind=PartyKind(kind), credit_code=None)
                print(f"created party {party.name} ({kind.value}) {party.id}", file=sys.stderr)
        issued = access.create_key(s, party=party, role=role, operator=operator, now=now.at)
        name = party.name
    print(f"key {issued.record.id} for {name} as {role.value}; shown once:", file=sys.stderr)
    print(issued.key)
    return 0


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from registry.access import service as access

    with session(settings) as s:
        done = access.revoke(s, key_id=args.key_id, now=actor().at)
    print("revoked" if done else "no such active key")
    return 0 if done else 1


def register(sub: Subcommands) -> None:
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    sp = keys.add_parser("create", help="make a key; prints it once, alone on the last line")
    sp.add_argument("--role", required=True, choices=[r.value for r in Role if r is not Role.SYSTEM])
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--party-name", help="created when no party has this name")
    who.add_argument("--party-id", type=uuid_arg)
    sp.add_argument("--operator", help="the person using the key (maker-checker, audit trail)")
    sp.set_defaults(func=cmd_keys_create)
    sp = keys.add_parser("revoke", help="revoke a key by its id")
    sp.add_argument("--key-id", required=True, type=uuid_arg)
    sp.set_defaults(func=cmd_keys_revoke)
