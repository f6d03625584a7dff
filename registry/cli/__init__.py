"""The `registry` command: one module per group of commands, all sharing registry/cli/common.py.

serve, migrate, demo (serve.py) · keys (keys.py) · users (users.py) · audit verify, check (audit.py) ·
jobs (jobs.py) · prices import (prices.py) · transfers import (transfers.py) · certificates
(certificates.py) · report (reports.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from registry import logs
from registry.cli import audit, certificates, jobs, keys, prices, reports, serve, transfers, users
from registry.cli.common import Refused
from registry.config import get_settings
from registry.errors import InvalidInput, RegistryError

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="registry",
        description="The pledge registry for environmental-rights "
        "credits. With no DATABASE_URL an embedded PostgreSQL is started in "
        "REGISTRY_DATA_DIR (default ./.registry-data).",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for module in (serve, keys, users, audit, jobs, certificates, reports, prices, transfers):
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format or "text")
    try:
        result: int = args.func(args, settings)
    except Refused as refused:  # the command cannot do what was asked: say why, change nothing
        print(f"refused: {refused}", file=sys.stderr)
        return 2
    except RegistryError as exc:  # a domain refusal, not a crash: say what is wrong
        where = f"{exc.field}: " if isinstance(exc, InvalidInput) else ""
        print(f"error ({exc.code}): {where}{exc.detail}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
