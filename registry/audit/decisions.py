"""The decision trail: every decision on a pledge's instructions — asked, consented, declined, reviewed,
confirmed, rejected, cancelled, expired — naming the person who took it, in one hash chain per pledge.

Unit movements are in the account chains (registry/audit/service.py); this trail says who decided
them, and also keeps the decisions that move no unit (a decline, a disposal's review and its terms). The
caller holds the pledge's row lock, which orders the pledge's events as it orders its changes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlmodel import Session

from registry.audit.chain import DECISION_FIELDS, GENESIS, link
from registry.principal import Actor


class DecisionKind(StrEnum):
    ASK = "ask"
    CONSENT = "consent"
    DECLINE = "decline"
    REVIEW = "review"
    CONFIRM = "confirm"
    REJECT = "reject"
    CANCEL = "cancel"
    EXPIRE = "expire"


_COLUMNS = (*DECISION_FIELDS, "prev_hash", "hash")
_TYPES = {
    "pledge_id": "uuid",
    "instruction_id": "uuid",
    "actor_party_id": "uuid",
    "actor_key_id": "uuid",
    "occurred_at": "timestamptz",
    "prev_hash": "bytea",
    "hash": "bytea",
    "seq": "bigint",
}
_HEAD = text("SELECT seq, head FROM pledge_chain WHERE pledge_id = :p")
_APPEND = text(
    "WITH head AS (INSERT INTO pledge_chain (pledge_id, seq, head) VALUES (:pledge_id, :seq, :hash) "
    "ON CONFLICT (pledge_id) DO UPDATE SET seq = EXCLUDED.seq, head = EXCLUDED.head) "
    f"INSERT INTO pledge_event ({', '.join(_COLUMNS)}) VALUES ("
    + ", ".join(f"CAST(:{c} AS {_TYPES.get(c, 'text')})" for c in _COLUMNS)
    + ")"
)


def terms_text(terms: Mapping[str, Any] | None) -> str | None:
    """What was decided, as canonical JSON (sorted keys, decimals and ids as strings): hashed as it is."""
    if terms is None:
        return None

    def plain(value: Any) -> Any:
        return str(value) if isinstance(value, Decimal | UUID) else value

    return json.dumps(
        {k: plain(v) for k, v in terms.items()}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def record(
    session: Session,
    actor: Actor,
    *,
    pledge_id: UUID,
    instruction_id: UUID,
    kind: DecisionKind,
    reason: str | None = None,
    terms: Mapping[str, Any] | None = None,
    first: bool = False,
) -> None:
    """Append one decision to the pledge's chain, in the caller's transaction. `first`: the pledge was
    created in this transaction, so its chain is empty (no head to read; were it not, the chain's unique
    sequence would refuse the event)."""
    head = None if first else session.execute(_HEAD, {"p": pledge_id}).first()
    prev = bytes(head.head) if head else GENESIS
    principal = actor.principal
    event: dict[str, Any] = {
        "pledge_id": pledge_id,
        "seq": (head.seq if head else 0) + 1,
        "kind": kind.value,
        "instruction_id": instruction_id,
        "actor_role": principal.role.value,
        "actor_party_id": principal.party_id,
        "actor_key_id": principal.key_id,
        "operator": principal.operator,
        "request_id": actor.request_id,
        "reason": reason,
        "terms": terms_text(terms),
        "occurred_at": actor.at,
        "prev_hash": prev,
    }
    event["hash"] = link(prev, event, DECISION_FIELDS)
    session.execute(_APPEND, event)


def of_pledge(session: Session, pledge_id: UUID) -> list[Any]:
    """A pledge's decisions, oldest first."""
    return list(
        session.execute(
            text("""
                SELECT id, seq, kind, instruction_id, actor_role, actor_party_id, operator, request_id, reason,
                       terms, occurred_at, hash
                  FROM pledge_event WHERE pledge_id = :p ORDER BY seq"""),
            {"p": pledge_id},
        ).all()
    )
