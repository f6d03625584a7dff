"""Writing the trail (in the caller's transaction) and reading it back: unit history and verification."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, text
from sqlmodel import Session

from registry.audit.chain import GENESIS, HASHED_FIELDS, digest_of_heads, link
from registry.audit.models import EventKind
from registry.ledger.repository import LockedAccount
from registry.principal import Actor

_COLUMNS = (*HASHED_FIELDS, "prev_hash", "hash")
_TYPES = {
    "account_id": "uuid",
    "seq": "bigint",
    "credit_type_id": "smallint",
    "batch_id": "uuid",
    "serial_start": "bigint",
    "serial_end": "bigint",
    "from_account_id": "uuid",
    "from_pledge_id": "uuid",
    "to_account_id": "uuid",
    "to_pledge_id": "uuid",
    "actor_party_id": "uuid",
    "actor_key_id": "uuid",
    "on_behalf_of": "uuid",
    "instruction_id": "uuid",
    "occurred_at": "timestamptz",
    "prev_hash": "bytea",
    "hash": "bytea",
}
# All of an operation's events and the move of the chain head, in one round trip. Rows keep their order,
# so each event's link check (trigger audit_event_links) sees the event before it.
_APPEND = text(
    "WITH head AS (UPDATE account SET audit_seq = :head_seq, audit_head = :head_hash WHERE id = :chain) "
    f"INSERT INTO audit_event ({', '.join(_COLUMNS)}) "
    "SELECT * FROM unnest(" + ", ".join(f"CAST(:{c} AS {_TYPES.get(c, 'text')}[])" for c in _COLUMNS) + ")"
)


@dataclass(frozen=True, slots=True)
class Change:
    """One block's move, before -> after. `None` on the from side is an issuance."""

    credit_type_id: int
    batch_id: UUID
    serial_start: int
    serial_end: int
    from_account_id: UUID | None
    from_status: str | None
    from_pledge_id: UUID | None
    to_account_id: UUID
    to_status: str
    to_pledge_id: UUID | None


def record(
    session: Session,
    actor: Actor,
    chain: LockedAccount,
    kind: EventKind,
    changes: Sequence[Change],
    *,
    reason: str | None = None,
) -> None:
    """Append one event per change to the chain of `chain` (an account the caller holds locked), and move
    the account's head. Same transaction as the change itself: both commit or neither does."""
    if not changes:
        return
    prev = chain.audit_head or GENESIS
    seq = chain.audit_seq
    principal = actor.principal
    rows: list[dict[str, Any]] = []
    for change in changes:
        seq += 1
        event: dict[str, Any] = {
            "account_id": chain.id,
            "seq": seq,
            "kind": kind.value,
            "credit_type_id": change.credit_type_id,
            "batch_id": change.batch_id,
            "serial_start": change.serial_start,
            "serial_end": change.serial_end,
            "from_account_id": change.from_account_id,
            "from_status": change.from_status,
            "from_pledge_id": change.from_pledge_id,
            "to_account_id": change.to_account_id,
            "to_status": change.to_status,
            "to_pledge_id": change.to_pledge_id,
            "actor_role": principal.role.value,
            "actor_party_id": principal.party_id,
            "actor_key_id": principal.key_id,
            "operator": principal.operator,
            "on_behalf_of": actor.on_behalf_of,
            "request_id": actor.request_id,
            "instruction_id": actor.instruction_id,
            "reason": reason,
            "occurred_at": actor.at,
        }
        event["prev_hash"] = prev
        event["hash"] = prev = link(prev, event)
        rows.append(event)
    params: dict[str, Any] = {c: [row[c] for row in rows] for c in _COLUMNS}
    session.execute(_APPEND, {**params, "head_seq": seq, "head_hash": prev, "chain": chain.id})


def unit_history(
    session: Session, credit_type_id: int, serial: int, *, after_id: int | None, limit: int
) -> list[Any]:
    """Every event that touched the unit, oldest first."""
    return list(
        session.execute(
            text("""
                SELECT e.id, e.kind, e.occurred_at, e.batch_id, e.serial_start, e.serial_end,
                       e.from_account_id, fa.number AS from_account_number, fa.party_id AS from_party_id,
                       e.from_status, e.from_pledge_id,
                       e.to_account_id, ta.number AS to_account_number, ta.party_id AS to_party_id,
                       e.to_status, e.to_pledge_id,
                       e.actor_role, e.actor_party_id, e.operator, e.on_behalf_of, e.request_id, e.instruction_id,
                       e.reason, e.account_id AS chain_account_id, e.seq, e.hash
                  FROM audit_event e
                  LEFT JOIN account fa ON fa.id = e.from_account_id
                  LEFT JOIN account ta ON ta.id = e.to_account_id
                 WHERE e.span @> ((CAST(:ct AS bigint) << 40) + :serial) AND e.id > :after
                 ORDER BY e.id LIMIT :limit"""),
            {"ct": credit_type_id, "serial": serial, "after": after_id or 0, "limit": limit},
        ).all()
    )


@dataclass(frozen=True, slots=True)
class BadEvent:
    id: int | None  # None when the problem is an event that is missing, not one that is there
    account_id: UUID
    seq: int
    problem: str


@dataclass(frozen=True, slots=True)
class Verification:
    events: int
    chains: int
    head_hash: str
    first_bad_event: BadEvent | None
    bad_events: int

    @property
    def ok(self) -> bool:
        return self.first_bad_event is None


def verify_chains(engine: Engine) -> Verification:
    """Recompute every chain from its genesis, and compare each chain's end with its account's head.

    Reads through its own connection, in one REPEATABLE READ snapshot so that writes going on
    meanwhile are not mistaken for breaks. Names the earliest (lowest id) bad event."""
    cols = ", ".join(("id", *_COLUMNS))
    bad: list[BadEvent] = []
    heads: list[tuple[UUID, int, bytes]] = []
    events = 0
    with engine.connect() as plain:
        conn = plain.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            stored = {
                r.id: (r.audit_seq, r.audit_head)
                for r in conn.execute(
                    text("SELECT id, audit_seq, audit_head FROM account WHERE audit_seq > 0")
                )
            }
            result = conn.execution_options(stream_results=True, yield_per=20_000).execute(
                text(f"SELECT {cols} FROM audit_event ORDER BY account_id, seq")
            )
            chain: UUID | None = None
            prev = GENESIS
            expected_seq = 1
            last_bad_chain: UUID | None = None
            for row in result:
                events += 1
                event: Mapping[str, Any] = row._mapping  # type: ignore[assignment]
                if row.account_id != chain:
                    if chain is not None:
                        _close_chain(chain, expected_seq - 1, prev, stored, heads, bad)
                    chain, prev, expected_seq = row.account_id, GENESIS, 1
                problem = None
                if row.seq != expected_seq:
                    problem = f"sequence gap: expected {expected_seq}, found {row.seq}"
                elif bytes(row.prev_hash) != prev:
                    problem = "prev_hash does not match the previous event's hash"
                elif link(prev, event) != bytes(row.hash):
                    problem = "content does not match its hash"
                if problem and last_bad_chain != chain:
                    # Report the first break of each chain; what follows a break is suspect anyway.
                    bad.append(BadEvent(row.id, row.account_id, row.seq, problem))
                    last_bad_chain = chain
                prev = bytes(row.hash)
                expected_seq = row.seq + 1
            if chain is not None:
                _close_chain(chain, expected_seq - 1, prev, stored, heads, bad)
            chained = {h[0] for h in heads}
            for account_id, (seq, _) in stored.items():
                if account_id not in chained:
                    bad.append(BadEvent(None, account_id, seq, "the account's chain has no events"))
    first = min(bad, key=lambda b: (b.id is None, b.id or 0)) if bad else None
    return Verification(events, len(heads), digest_of_heads(heads), first, len(bad))


def _close_chain(
    chain: UUID,
    last_seq: int,
    last_hash: bytes,
    stored: dict[UUID, tuple[int, bytes]],
    heads: list[tuple[UUID, int, bytes]],
    bad: list[BadEvent],
) -> None:
    heads.append((chain, last_seq, last_hash))
    head = stored.get(chain)
    moved = head is None or head[0] != last_seq or bytes(head[1]) != last_hash
    if moved and not any(b.account_id == chain for b in bad):
        bad.append(
            BadEvent(
                None,
                chain,
                last_seq,
                "the chain does not end at its account's recorded head (events removed?)",
            )
        )
