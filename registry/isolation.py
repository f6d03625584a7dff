"""Set-based jobs that one row cannot stop.

A job that handles every pledge in one statement is fast, and fails as a whole when one row cannot be
written. `each_part` runs the statement on all rows in a savepoint; when the database refuses, it runs it
again on each half, and so on down to single rows: every row that can be done is done, still mostly
set-based (k bad rows among n cost about 2·k·log2(n) statements), and the rows that fail alone are
returned for the caller to flag."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

log = logging.getLogger(__name__)

K = TypeVar("K")
T = TypeVar("T")


@dataclass
class Outcome(Generic[K, T]):
    done: list[T] = field(default_factory=list)  # one result per statement that succeeded
    failed: list[tuple[K, DBAPIError]] = field(default_factory=list)


def sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def attempt(session: Session, run: Callable[[], T]) -> T | DBAPIError:
    """`run()` in a savepoint: its result, or the database's refusal (and nothing of it left behind)."""
    try:
        with session.begin_nested():
            return run()
    except DBAPIError as exc:
        return exc


def each_part(
    session: Session, keys: Sequence[K], run: Callable[[Sequence[K]], T], *, what: str
) -> Outcome[K, T]:
    """`run(keys)`, halving on failure down to single keys (see the module's docstring)."""
    outcome: Outcome[K, T] = Outcome()
    todo: list[Sequence[K]] = [keys] if keys else []
    while todo:
        part = todo.pop()
        result = attempt(session, partial(run, part))
        if not isinstance(result, DBAPIError):
            outcome.done.append(result)
        elif len(part) == 1:
            log.warning("%s: %s failed alone (SQLSTATE %s)", what, part[0], sqlstate(result))
            outcome.failed.append((part[0], result))
        else:
            middle = len(part) // 2
            todo += [part[middle:], part[:middle]]
    return outcome
