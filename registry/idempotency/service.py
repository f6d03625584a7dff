"""Claim an idempotency key inside the request's transaction; store the response before commit.

A key string belongs to the API key that sent it (so to one operator): the same string from another key
is another request. A second request with the same key waits on the first one's uncommitted row (primary
key), then either replays its stored response (first committed) or does the work itself (rolled back)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import text
from sqlmodel import Session

from registry.db import run
from registry.errors import RegistryError


class IdempotencyKeyReused(RegistryError):
    code = "idempotency_key_reused"
    title = "Idempotency key reused with a different request"
    message = "This request was already sent with other contents."

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was used before for a different request", key=key)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: bytes


def fingerprint(method: str, path: str, canonical_body: str) -> bytes:
    return hashlib.sha256(f"{method} {path}\n{canonical_body}".encode()).digest()


@dataclass(frozen=True, slots=True)
class Claim:
    key_id: UUID
    party_id: UUID
    key: str
    request_fingerprint: bytes
    now: datetime


def claim(session: Session, claim: Claim) -> StoredResponse | None:
    """None: the key is ours, do the work. Otherwise the first request's response, to replay."""
    inserted = run(
        session,
        "INSERT INTO idempotency_record (key_id, party_id, key, fingerprint, created_at) "
        "VALUES (%(i)s, %(p)s, %(k)s, %(f)s, %(now)s) ON CONFLICT DO NOTHING RETURNING 1",
        {
            "i": claim.key_id,
            "p": claim.party_id,
            "k": claim.key,
            "f": claim.request_fingerprint,
            "now": claim.now,
        },
    )
    if inserted:
        return None
    row = session.execute(
        text(
            "SELECT fingerprint, status_code, response FROM idempotency_record WHERE key_id = :i AND key = :k"
        ),
        {"i": claim.key_id, "k": claim.key},
    ).one()
    if bytes(row.fingerprint) != claim.request_fingerprint:
        raise IdempotencyKeyReused(claim.key)
    return StoredResponse(row.status_code, bytes(row.response))


def store(session: Session, *, key_id: UUID, key: str, status_code: int, body: bytes) -> None:
    run(
        session,
        "UPDATE idempotency_record SET status_code = %(s)s, response = %(b)s WHERE key_id = %(i)s AND key = %(k)s",
        {"s": status_code, "b": body, "i": key_id, "k": key},
    )


def claim_many(session: Session, claims: Sequence[Claim]) -> set[tuple[UUID, str]]:
    """`claim` for many keys in one statement (requests done together): the (key_id, key) pairs now ours.
    A key already there (a replay, a reused key) is left out, for its request to be answered alone. Taken
    in key order, so that two batches claiming the same keys wait for each other in one order."""
    ordered = sorted(claims, key=lambda c: (c.key_id, c.key))
    rows = run(
        session,
        "INSERT INTO idempotency_record (key_id, party_id, key, fingerprint, created_at) "
        "SELECT * FROM unnest(%(i)s::uuid[], %(p)s::uuid[], %(k)s::text[], %(f)s::bytea[], %(now)s::timestamptz[]) "
        "ON CONFLICT DO NOTHING RETURNING key_id, key",
        {"i": [c.key_id for c in ordered], "p": [c.party_id for c in ordered], "k": [c.key for c in ordered],
         "f": [c.request_fingerprint for c in ordered], "now": [c.now for c in ordered]},
    )  # fmt: skip
    return {(r.key_id, r.key) for r in rows}


def release_many(session: Session, keys: Sequence[tuple[UUID, str]]) -> None:
    """Give back keys claimed in this transaction for requests it will not answer (they go alone)."""
    if keys:
        run(
            session,
            "DELETE FROM idempotency_record WHERE (key_id, key) IN "
            "(SELECT * FROM unnest(%(i)s::uuid[], %(k)s::text[])) AND status_code IS NULL",
            {"i": [i for i, _ in keys], "k": [k for _, k in keys]},
        )


def store_many(session: Session, stored: Sequence[tuple[UUID, str, int, bytes]]) -> None:
    """`store` for many responses in one statement: (key_id, key, status code, body)."""
    if stored:
        run(
            session,
            "UPDATE idempotency_record r SET status_code = v.s, response = v.b "
            "FROM unnest(%(i)s::uuid[], %(k)s::text[], %(s)s::int[], %(b)s::bytea[]) AS v(i, k, s, b) "
            "WHERE r.key_id = v.i AND r.key = v.k",
            {"i": [x[0] for x in stored], "k": [x[1] for x in stored], "s": [x[2] for x in stored],
             "b": [x[3] for x in stored]},
        )  # fmt: skip


def purge(session: Session, *, older_than: datetime) -> int:
    result = session.execute(text("DELETE FROM idempotency_record WHERE created_at < :t"), {"t": older_than})
    return int(result.rowcount)  # type: ignore[attr-defined]
