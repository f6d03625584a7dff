"""Failure-based throttling for public endpoints (certificate verification, sign-in).

A client gets `free_failures` wrong answers per `window`; the one that uses up the last of them blocks
it for `base_delay`, and each later failure (one allowed whenever a block has run out) blocks it for
twice as long, up to `max_delay`. While blocked, every request of that scope is refused without being
checked, so guessing gets no faster by ignoring the refusals. Counters live in PostgreSQL, so every app
process and instance shares them; a window that has run out starts the count again.

The count is taken *before* the costly work it guards (a password hash, a code lookup): `reserve` counts
the attempt as a failure in a short transaction of its own, committed at once, so that forty concurrent
guesses see each other and exactly `free_failures` of them get through; `release` takes the count back
when the attempt succeeded. A failed attempt keeps its count: nothing more to do."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel import Session

from registry.db import beside
from registry.errors import RegistryError


class RateLimited(RegistryError):
    code = "rate_limited"
    title = "Too many failed attempts"
    message = "Too many attempts; try again in {retry_after} s."

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed attempts from this client; retry in {retry_after} s", retry_after=retry_after
        )
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Policy:
    scope: str
    free_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    base_delay: timedelta = timedelta(seconds=2)
    max_delay: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A counted attempt: release it when it succeeded."""

    policy: Policy
    client: str


# The count with this attempt: a window that has run out starts it again.
_QUIET = "r.window_start < CAST(:now AS timestamptz) - :window"
_COUNT = f"(CASE WHEN {_QUIET} THEN 1 ELSE r.failures + 1 END)"


def _blocked(count: str) -> str:
    """From the attempt that uses up the free ones: blocked for base * 2^(count - free), at most max."""
    return (
        f"CASE WHEN {count} >= :free THEN CAST(:now AS timestamptz)"
        f" + least(:base * power(2, least({count} - :free, 30)), :max) END"
    )


# One statement decides and counts, under the row's lock: a blocked client's row is left as it is (the
# WHERE), and then no row is returned.
_RESERVE = f"""
    INSERT INTO rate_limit AS r (scope, client, failures, window_start, blocked_until)
    VALUES (:s, :c, 1, :now, {_blocked("1")})
    ON CONFLICT (scope, client) DO UPDATE SET
        failures = {_COUNT},
        window_start = CASE WHEN {_QUIET} THEN :now ELSE r.window_start END,
        blocked_until = {_blocked(_COUNT)}
    WHERE r.blocked_until IS NULL OR r.blocked_until <= :now
    RETURNING failures"""


def reserve(session: Session, policy: Policy, client: str, now: datetime) -> Attempt:
    """Count an attempt as failed before it is evaluated; RateLimited (nothing counted) while the client
    is blocked. Committed beside `session`'s transaction, at once."""
    params = {"s": policy.scope, "c": client, "now": now, "free": policy.free_failures,
              "window": policy.window, "base": policy.base_delay, "max": policy.max_delay}  # fmt: skip
    with beside(session) as side:
        counted = side.execute(text(_RESERVE), params).first()
        if counted is None:
            until: datetime = side.execute(
                text("SELECT blocked_until FROM rate_limit WHERE scope = :s AND client = :c"), params
            ).scalar_one()
            raise RateLimited(max(1, math.ceil((until - now).total_seconds())))
    return Attempt(policy, client)


def release(session: Session, attempt: Attempt) -> None:
    """The attempt succeeded: it was no failure. Written in `session`'s transaction (the request's), so a
    request that fails after all keeps the count; a block it set is lifted with it."""
    session.execute(
        text("""
            UPDATE rate_limit SET failures = greatest(failures - 1, 0), blocked_until = NULL
             WHERE scope = :s AND client = :c"""),
        {"s": attempt.policy.scope, "c": attempt.client},
    )


def purge(session: Session, *, older_than: datetime) -> int:
    """Forget clients whose window and block both ended before `older_than`."""
    rows = session.execute(
        text("""
            DELETE FROM rate_limit
             WHERE window_start < :t AND (blocked_until IS NULL OR blocked_until < :t)"""),
        {"t": older_than},
    )
    return int(rows.rowcount)  # type: ignore[attr-defined]
