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

from registry import rows
from registry.audit.chain import DECISION_FIELDS, GENESIS, hash_sql
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
}
_GIVEN = tuple(name for name in DECISION_FIELDS if name != "seq")
# The chain's head read, the event hashed by the same SQL expression the verifier recomputes it with
# (registry/audit/service.py), the head moved and the event written: CTEs that ride in the statement
# saving the decision's rows (rows.Along), or make a statement of their own. The caller holds the pledge's
# row lock, so nobody else moves the head meanwhile; the trigger pledge_event_links still checks that the
# event extends its chain.
_APPEND = (
    "head AS (SELECT seq, head FROM pledge_chain WHERE pledge_id = %(pledge_id)s::uuid), "
    "event AS (SELECT "
    + ", ".join(f"%({c})s::{_TYPES.get(c, 'text')} AS {c}" for c in _GIVEN)
    + ", coalesce((SELECT seq FROM head), 0) + 1 AS seq"
    + ", coalesce((SELECT head FROM head), %(genesis)s::bytea) AS prev_hash), "
    f"hashed AS (SELECT *, {hash_sql(DECISION_FIELDS)} AS hash FROM event), "
    "moved AS (INSERT INTO pledge_chain (pledge_id, seq, head) SELECT pledge_id, seq, hash FROM hashed "
    "ON CONFLICT (pledge_id) DO UPDATE SET seq = EXCLUDED.seq, head = EXCLUDED.head), "
    f"logged AS (INSERT INTO pledge_event ({', '.join(_COLUMNS)}) SELECT {', '.join(_COLUMNS)} FROM hashed "
    "RETURNING 1)"
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


def event(
    actor: Actor,
    *,
    pledge_id: UUID,
    instruction_id: UUID,
    kind: DecisionKind,
    reason: str | None = None,
    terms: Mapping[str, Any] | None = None,
) -> rows.Along:
    """One decision appended to the pledge's chain, as writes for the statement that saves the decision
    (rows.save_changes or rows.insert_new, in the caller's transaction, which holds the pledge's row lock)."""
    principal = actor.principal
    return rows.Along(
        _APPEND,
        {
            "pledge_id": pledge_id,
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
            "genesis": GENESIS,
        },
    )


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
