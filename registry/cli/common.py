"""What every command shares: the database (migrated first, the engine disposed on every path), one unit
of work, the system actor, refusals, argument types, output and progress."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any, TypeAlias
from uuid import UUID

from sqlalchemy import Engine
from sqlmodel import Session

from registry.clock import SystemClock
from registry.config import Settings
from registry.db import database_url, describe, make_engine, migrate, unit_of_work
from registry.principal import SYSTEM, Actor

if TYPE_CHECKING:
    from rich.progress import Progress

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Command = Callable[[argparse.Namespace, Settings], int]


class Refused(Exception):
    """The command cannot do what was asked. `main` prints the reason and exits 2; whatever the command
    had written in its unit of work is rolled back."""


def actor() -> Actor:
    return Actor(SYSTEM, SystemClock().now(), request_id="cli")


def migrated_url(settings: Settings) -> str:
    """The database, migrated to head (a no-op when it is): every command works on an empty one."""
    url = database_url(settings)
    print(f"database: {describe(url)}", file=sys.stderr)
    migrate(url)
    return url


@contextmanager
def database(settings: Settings, *, pool_size: int = 1, url: str | None = None) -> Iterator[Engine]:
    """An engine on the migrated database, disposed however the command ends."""
    engine = make_engine(url or migrated_url(settings), pool_size=pool_size)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def session(settings: Settings) -> Iterator[Session]:
    """One unit of work on the migrated database: committed when the block ends, rolled back when it
    raises (a `Refused` included)."""
    with database(settings) as engine, unit_of_work(engine) as s:
        yield s


# --- argument types: a bad value is argparse's usage error (exit 2), never a traceback ---------------


def uuid_arg(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an id (like 3f2b…-…)") from None


def day_arg(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a day (YYYY-MM-DD)") from None


# --- output ------------------------------------------------------------------------------------------


def write_out(data: bytes, out: str, what: str) -> None:
    """To a file (saying so on stderr), or to standard output for '-'."""
    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    with open(out, "wb") as target:
        target.write(data)
    print(f"{out}: {what}, {len(data)} bytes", file=sys.stderr)


def interactive() -> bool:
    """A person is watching: both standard output and standard error are a terminal. Piped or redirected,
    commands print no progress (a log or a pipe wants results, not redraws)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


@contextmanager
def progress(what: str, total: int, *, unit: str = "rows") -> Iterator[Callable[[int], None]]:
    """A progress bar with count, rate and time left on standard error, when `interactive()`; otherwise
    nothing. Yields `advance(n)`."""
    if not interactive() or total <= 0:
        yield lambda _n: None
        return
    bar = _bar(unit)
    with bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


def _bar(unit: str) -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed  # rich's, from recent samples
            if speed is None and task.completed and task.elapsed:
                speed = task.completed / task.elapsed  # too quick for samples: the average so far
            return Text("" if speed is None else f"{speed:,.0f} {unit}/s")

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                          TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]  # fmt: skip
    return Progress(*columns, console=Console(stderr=True), transient=False)
