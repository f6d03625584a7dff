"""Delivering the outbox: POST each alert event to its bank's webhook, signed, with retries — each bank
on its own, so that no bank's address, failure or slowness touches another's deliveries.

`X-Registry-Signature: sha256=<hex HMAC-SHA256 of the exact body with the bank's secret>`;
`X-Registry-Delivery` is the delivery's id, the same on every retry, for the bank to drop duplicates.

How a delivery goes (`Dispatcher`):
1. **claim**, in one short transaction: the oldest due delivery of each bank that has none in flight,
   at most as many as there are free senders; each is leased (`lease_until`) and its attempt counted.
   No transaction stays open while a bank's endpoint is called.
2. **send**, in a small thread pool, through registry/outbound.py: the URL parsed again, the name
   resolved and every address checked, the connection pinned to them, one deadline for the attempt.
   Whatever goes wrong (any exception at all) is a category.
3. **record** the outcome in its own transaction: delivered, or the category in `last_error` and the
   next attempt after a backoff (30 s, 1 min, 2 min … capped at 1 h); after MAX_ATTEMPTS, `failed`.
   The same transaction claims the bank's next due delivery for the same sender, and a sender with
   nothing left claims for the other banks at once: what is due goes out without waiting for a tick
   while senders are free.
A process that dies mid-send leaves a lease that expires: the delivery is sent again (at least once).
Claims across processes are serialized by an advisory lock; the lease keeps one in flight per bank."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlmodel import Session

from registry import outbound
from registry.alert.models import DeliveryStatus
from registry.clock import Clock
from registry.config import WEBHOOK_CONCURRENCY, Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# A lease outlives the attempt's deadline by this much before another sender may take the delivery.
LEASE_GRACE = timedelta(seconds=60)
_CLAIM_LOCK = zlib.crc32(b"deliver_webhooks")

# A unit of work: production opens a transaction per call; a test may hand its own session.
Transaction = Callable[[], AbstractContextManager[Session]]


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** (attempts - 1), 3600))


def body_of(payload: Any) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Policy:
    call: outbound.Policy = field(default_factory=outbound.Policy)  # how each attempt calls out
    concurrency: int = WEBHOOK_CONCURRENCY  # deliveries in flight at once (each of a different bank)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, resolver: outbound.Resolver = outbound.system_resolver
    ) -> Policy:
        return cls(outbound.Policy.from_settings(settings, resolver=resolver), settings.webhook_concurrency)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    party_id: UUID
    attempts: int  # this attempt's number
    event: str
    payload: Any
    url: str
    secret: str


def claim(
    session: Session, *, now: datetime, limit: int, busy: Collection[UUID], lease: timedelta
) -> list[Claimed]:
    """Up to `limit` due deliveries, the oldest of each bank not in `busy` and with nothing in flight;
    leased and counted. Empty when another process is claiming right now."""
    if (
        limit <= 0
        or not session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK}).scalar_one()
    ):
        return []
    return _claim(session, "", {"now": now, "busy": list(busy), "limit": limit, "lease_until": now + lease})


def claim_next(session: Session, party_id: UUID, *, now: datetime, lease: timedelta) -> Claimed | None:
    """The bank's next due delivery, for the sender that has just finished one of its (in the transaction
    that records it: no other sender can take the bank in between)."""
    found = _claim(session, "AND d.party_id = :party",
                   {"now": now, "busy": [], "limit": 1, "lease_until": now + lease, "party": party_id})  # fmt: skip
    return found[0] if found else None


_PENDING = DeliveryStatus.PENDING
_CLAIM = f"""
    WITH first AS (
        SELECT DISTINCT ON (d.party_id) d.id, d.next_attempt_at
          FROM webhook_delivery d
         WHERE d.status = '{_PENDING}' AND d.next_attempt_at <= :now AND d.party_id <> ALL(CAST(:busy AS uuid[]))
           AND NOT EXISTS (SELECT 1 FROM webhook_delivery f
                            WHERE f.party_id = d.party_id AND f.status = '{_PENDING}' AND f.lease_until > :now)
           {{party}}
         ORDER BY d.party_id, d.next_attempt_at, d.id
    ),
    picked AS (
        SELECT d.id FROM webhook_delivery d JOIN first USING (id)
         ORDER BY first.next_attempt_at, d.id LIMIT :limit
           FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_delivery d SET attempts = d.attempts + 1, lease_until = :lease_until
      FROM picked p, webhook w
     WHERE d.id = p.id AND w.party_id = d.party_id
    RETURNING d.id, d.party_id, d.attempts, d.event, d.payload, w.url, w.secret
"""


def _claim(session: Session, party: str, params: dict[str, Any]) -> list[Claimed]:
    rows = session.execute(text(_CLAIM.format(party=party)), params).all()
    return [Claimed(r.id, r.party_id, r.attempts, r.event, r.payload, r.url, r.secret) for r in rows]


def attempt(delivery: Claimed, policy: outbound.Policy) -> str | None:
    """Send one delivery: None when the bank took it (2xx), else the category of the failure. Never raises."""
    try:
        body = body_of(delivery.payload)
        outbound.post(delivery.url, body, {
            "Content-Type": "application/json", "X-Registry-Signature": sign(delivery.secret, body),
            "X-Registry-Delivery": str(delivery.id), "X-Registry-Event": delivery.event,
        }, policy)  # fmt: skip
    except outbound.Refused as refused:
        return refused.category
    except Exception:  # a bug must cost this delivery, not the batch
        log.exception("webhook delivery %s", delivery.id)
        return "error"
    return None


def record(session: Session, delivery: Claimed, error: str | None, *, now: datetime) -> None:
    """The attempt's outcome, unless the lease was lost meanwhile (another sender took the delivery)."""
    if error is None:
        session.execute(
            text(f"UPDATE webhook_delivery SET status = '{DeliveryStatus.DELIVERED}', delivered_at = :now, "
                 f"last_error = NULL, lease_until = NULL WHERE id = :id AND attempts = :a AND status = '{_PENDING}'"),
            {"now": now, "id": delivery.id, "a": delivery.attempts},
        )  # fmt: skip
        return
    session.execute(
        text("UPDATE webhook_delivery SET last_error = :e, next_attempt_at = :next, lease_until = NULL, "
             f"status = CASE WHEN attempts >= :max THEN '{DeliveryStatus.FAILED}' ELSE '{_PENDING}' END "
             f"WHERE id = :id AND attempts = :a AND status = '{_PENDING}'"),
        {"e": error[:40], "next": now + backoff(delivery.attempts), "max": MAX_ATTEMPTS, "id": delivery.id,
         "a": delivery.attempts},
    )  # fmt: skip


@dataclass
class Tally:
    delivered: int = 0
    failed: int = 0


class Dispatcher:
    """Claims due deliveries and sends them in a bounded pool; `tick()` returns at once, so a slow
    endpoint holds one sender for at most its deadline and never the schedule."""

    def __init__(self, transaction: Transaction, clock: Clock, policy: Policy) -> None:
        self._transaction = transaction
        self._clock = clock
        self._policy = policy
        self._pool = ThreadPoolExecutor(max_workers=policy.concurrency, thread_name_prefix="webhook")
        self._lock = threading.Lock()
        self._busy: set[UUID] = set()  # banks with a delivery in flight from this process
        self._futures: set[Future[None]] = set()
        self._closed = False
        self._ticking = threading.Lock()
        self.tally = Tally()

    def tick(self, *, limit: int | None = None) -> int:
        """Claim and start what is due; returns how many were started."""
        with self._ticking:  # one claim at a time in this process, each counting the free senders anew
            return self._tick(limit)

    def _tick(self, limit: int | None) -> int:
        with self._lock:
            if self._closed:
                return 0
            free = self._policy.concurrency - len(self._busy)
            busy = set(self._busy)
        if limit is not None:
            free = min(free, limit)
        if free <= 0:
            return 0
        with self._transaction() as session:
            claimed = claim(session, now=self._clock.now(), limit=free, busy=busy, lease=self._lease())
        for delivery in claimed:
            with self._lock:
                self._busy.add(delivery.party_id)
            future = self._pool.submit(self._run, delivery)
            with self._lock:
                self._futures.add(future)
            future.add_done_callback(self._forget)
        return len(claimed)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    def _run(self, delivery: Claimed) -> None:
        current: Claimed | None = delivery
        try:
            while current is not None:
                error = attempt(current, self._policy.call)
                try:
                    with self._transaction() as session:
                        now = self._clock.now()
                        record(session, current, error, now=now)
                        # The bank's next one in the same transaction: a burst of a bank's alerts is sent
                        # by this sender, one after another, at one transaction each.
                        following = None if self._closed else claim_next(session, current.party_id, now=now,
                                                                         lease=self._lease())  # fmt: skip
                except Exception:  # the lease expires and the delivery is sent again
                    log.exception("recording webhook delivery %s", current.id)
                    return
                with self._lock:
                    if error is None:
                        self.tally.delivered += 1
                    else:
                        self.tally.failed += 1
                current = following
        finally:
            with self._lock:
                self._busy.discard(delivery.party_id)
                closed = self._closed
        if not closed:
            self._refill()

    def _lease(self) -> timedelta:
        return timedelta(seconds=self._policy.call.timeout_s) + LEASE_GRACE

    def _refill(self) -> None:
        """A sender that is free takes what is due now rather than at the next tick: the others wait only
        for the slow endpoints in flight, never for a slow endpoint's turn."""
        try:
            self.tick()
        except Exception:  # the next tick tries again
            log.exception("claiming webhook deliveries")

    def in_flight(self) -> int:
        with self._lock:
            return len(self._futures)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until nothing is in flight (what finishing senders take meanwhile included); False if
        something still is after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                pending = set(self._futures)
            if not pending:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            wait(pending, timeout=left)

    def close(self, *, wait: bool = True) -> None:
        """Stop taking work; `wait` for what is in flight (else a claimed delivery's lease expires and it
        is sent again later)."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def deliver_due(transaction: Transaction, clock: Clock, policy: Policy, *, rounds: int = 1000) -> Tally:
    """Send what is due now and wait for the outcomes (the CLI; tests): one delivery per bank per round,
    rounds until nothing due is left."""
    dispatcher = Dispatcher(transaction, clock, policy)
    try:
        for _ in range(rounds):
            started = dispatcher.tick()
            dispatcher.wait()
            if not started:
                break
    finally:
        dispatcher.close(wait=True)
    return dispatcher.tally
