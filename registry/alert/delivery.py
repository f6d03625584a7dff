"""Delivering the outbox: POST each alert event to its bank's webhook, signed, with retries.

`X-Registry-Signature: sha256=<hex HMAC-SHA256 of the exact body with the bank's secret>`. A delivery
that fails is retried with exponential backoff (30 s, 1 min, 2 min … capped at 1 h); after
MAX_ATTEMPTS it is marked `failed` and stays visible in `GET /v1/webhook/deliveries`. Rows are claimed
with SKIP LOCKED, so several workers never send the same delivery at once."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlmodel import Session

MAX_ATTEMPTS = 8
TIMEOUT_S = 5.0


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** (attempts - 1), 3600))


def body_of(payload: Any) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def deliver_due(
    session: Session, *, now: datetime, client: httpx.Client | None = None, limit: int = 50
) -> int:
    """Send what is due; returns how many were delivered."""
    rows = session.execute(
        text("""
            SELECT d.id, d.payload, d.attempts, d.event, w.url, w.secret
              FROM webhook_delivery d JOIN webhook w ON w.party_id = d.party_id
             WHERE d.status = 'pending' AND d.next_attempt_at <= :now
             ORDER BY d.id LIMIT :limit
               FOR UPDATE OF d SKIP LOCKED"""),
        {"now": now, "limit": limit},
    ).all()
    if not rows:
        return 0
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT_S, follow_redirects=False)
    delivered = 0
    try:
        for row in rows:
            body = body_of(row.payload)
            error = _post(http, row.url, body, headers={
                "Content-Type": "application/json", "X-Registry-Signature": sign(row.secret, body),
                "X-Registry-Delivery": str(row.id), "X-Registry-Event": row.event,
            })  # fmt: skip
            attempts = row.attempts + 1
            if error is None:
                delivered += 1
                session.execute(
                    text("UPDATE webhook_delivery SET status = 'delivered', attempts = :a, delivered_at = :now, "
                         "last_error = NULL WHERE id = :id"),
                    {"a": attempts, "now": now, "id": row.id},
                )  # fmt: skip
            else:
                session.execute(
                    text("UPDATE webhook_delivery SET attempts = :a, last_error = :e, next_attempt_at = :next, "
                         "status = CASE WHEN :a >= :max THEN 'failed' ELSE 'pending' END WHERE id = :id"),
                    {"a": attempts, "e": error[:500], "next": now + backoff(attempts), "max": MAX_ATTEMPTS,
                     "id": row.id},
                )  # fmt: skip
    finally:
        if own:
            http.close()
    return delivered


def _post(http: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> str | None:
    try:
        response = http.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"
