"""Failure-based throttling for public endpoints (certificate verification, sign-in).

A client gets `free_failures` wrong answers per `window`; each failure after that blocks it for a delay
that doubles up to `max_delay`. While blocked, every request of that scope is refused without being
checked, so guessing gets no faster by ignoring the refusals. Counters live in PostgreSQL, so every app
process and instance shares them; a window without failures starts the count again."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel import Session

from registry.errors import RegistryError


class RateLimited(RegistryError):
    code = "rate_limited"
    title = "Too many failed attempts"

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


# The count after this failure: a window without failures starts it again.
_QUIET = "r.window_start < CAST(:now AS timestamptz) - :window"
_FAILURES = f"(CASE WHEN {_QUIET} THEN 1 ELSE r.failures + 1 END)"


def _blocked(failures: str) -> str:
    """Blocked from now for base * 2^(failures beyond the free ones - 1), at most max; or not at all."""
    return (
        f"CASE WHEN {failures} > :free THEN CAST(:now AS timestamptz)"
        f" + least(:base * power(2, least({failures} - :free - 1, 30)), :max) END"
    )


def check(session: Session, policy: Policy, client: str, now: datetime) -> None:
    """Raise RateLimited while the client is blocked for this scope."""
    until = session.execute(
        text("SELECT blocked_until FROM rate_limit WHERE scope = :s AND client = :c"),
        {"s": policy.scope, "c": client},
    ).scalar_one_or_none()
    if until is not None and until > now:
        raise RateLimited(math.ceil((until - now).total_seconds()))


def record_failure(session: Session, policy: Policy, client: str, now: datetime) -> datetime | None:
    """Count one failure; returns until when the client is now blocked (None: not blocked)."""
    until: datetime | None = session.execute(
        text(f"""
            INSERT INTO rate_limit AS r (scope, client, failures, window_start, blocked_until)
            VALUES (:s, :c, 1, :now, {_blocked("1")})
            ON CONFLICT (scope, client) DO UPDATE SET
                failures = {_FAILURES},
                window_start = CASE WHEN {_QUIET} THEN :now ELSE r.window_start END,
                blocked_until = {_blocked(_FAILURES)}
            RETURNING blocked_until"""),
        {
            "s": policy.scope,
            "c": client,
            "now": now,
            "free": policy.free_failures,
            "window": policy.window,
            "base": policy.base_delay,
            "max": policy.max_delay,
        },
    ).scalar_one()
    return until


def purge(session: Session, *, older_than: datetime) -> int:
    """Forget clients whose window and block both ended before `older_than`."""
    rows = session.execute(
        text("""
            DELETE FROM rate_limit
             WHERE window_start < :t AND (blocked_until IS NULL OR blocked_until < :t)"""),
        {"t": older_than},
    )
    return int(rows.rowcount)  # type: ignore[attr-defined]
