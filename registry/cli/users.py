"""`registry users create|password|disable`: web console users."""

from __future__ import annotations

import argparse
import sys

from registry import text
from registry.cli.common import Refused, Subcommands, actor, session, uuid_arg
from registry.config import Settings
from registry.principal import Role


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise Refused("the passwords differ")
    return first


def cmd_users_create(args: argparse.Namespace, settings: Settings) -> int:
    from registry.ledger import repository as repo
    from registry.users import service as users

    name = text.checked(args.name or args.username, field="--name", max_length=text.NAME_MAX)
    password = _password(args)
    with session(settings) as s:
        party = repo.get_party(s, args.party_id) if args.party_id else None
        party = party or (repo.get_party_by_name(s, args.party_name) if args.party_name else None)
        if party is None:
            raise Refused(f"no party {args.party_id or args.party_name}")
        user = users.create_user(s, username=args.username, display_name=name, party=party,
                                 role=Role(args.role), password=password, now=actor().at)  # fmt: skip
        said = f"user {user.username} ({user.role}) for {party.name}"
    print(said)
    return 0


def cmd_users_disable(args: argparse.Namespace, settings: Settings) -> int:
    from registry.users import service as users

    with session(settings) as s:
        done = users.disable(s, args.username, actor().at)
    print("disabled; their sessions are ended" if done else "no such active user")
    return 0 if done else 1


def cmd_users_password(args: argparse.Namespace, settings: Settings) -> int:
    from registry.users import service as users

    password = _password(args)
    with session(settings) as s:
        done = users.set_password(s, args.username, password, actor().at)
    print("password set; their sessions are ended" if done else "no such user")
    return 0 if done else 1


def register(sub: Subcommands) -> None:
    people = sub.add_parser("users", help="web console users").add_subparsers(
        dest="users_command", required=True
    )
    sp = people.add_parser("create", help="a user of the web console, acting for a party")
    sp.add_argument("username", help="2-64 of a-z 0-9 . _ -; recorded as the operator in the audit trail")
    sp.add_argument("--role", required=True, choices=["exchange", "bank", "holder", "auditor"])
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--party-name")
    who.add_argument("--party-id", type=uuid_arg)
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
