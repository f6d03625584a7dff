"""The canonical form of an event and its hash: hash = SHA-256(prev_hash || canonical JSON of the event).

One function makes the canonical bytes, used both when an event is written and when it is verified;
change it only with a migration that re-anchors every chain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from registry.copy import ValuePrinter

GENESIS = bytes(32)  # the prev_hash of the first event of every chain

# Order matters: it is the canonical order of the hashed fields.
HASHED_FIELDS = (
    "account_id",
    "seq",
    "kind",
    "credit_type_id",
    "batch_id",
    "serial_start",
    "serial_end",
    "from_account_id",
    "from_status",
    "from_pledge_id",
    "to_account_id",
    "to_status",
    "to_pledge_id",
    "actor_role",
    "actor_party_id",
    "actor_key_id",
    "operator",
    "on_behalf_of",
    "request_id",
    "instruction_id",
    "reason",
    "occurred_at",
)

# The decision trail of pledges (registry/audit/decisions.py): one chain per pledge, the same construction.
DECISION_FIELDS = (
    "pledge_id",
    "seq",
    "kind",
    "instruction_id",
    "actor_role",
    "actor_party_id",
    "actor_key_id",
    "operator",
    "request_id",
    "reason",
    "terms",
    "occurred_at",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _canonical_value(value: Any) -> Any:
    if value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        # Integer microseconds since the epoch: exact, and independent of how the time zone is shown.
        return (value - _EPOCH) // _MICROSECOND
    raise TypeError(f"no canonical form for {type(value).__name__}")


def canonical(event: Mapping[str, Any], fields: tuple[str, ...] = HASHED_FIELDS) -> bytes:
    values = [_canonical_value(event[name]) for name in fields]
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode()


class Canonical(ValuePrinter):
    """`canonical()` for many events at once, byte for byte: each distinct value (an account, a status, a
    reference) is printed once and reused, integers are printed as json.dumps prints them. A settlement
    batch hashes tens of thousands of events; this is what keeps that a small part of its time."""

    __slots__ = ()

    def _print_uuid(self, value: UUID) -> str:
        return json.dumps(str(value))

    def _print(self, value: Any) -> str:
        return json.dumps(_canonical_value(value), ensure_ascii=False)

    def link(self, prev_hash: bytes, values: Sequence[Any]) -> bytes:
        """The hash of an event given its hashed fields' values in canonical order."""
        body = "[" + ",".join(map(self.value, values)) + "]"
        return hashlib.sha256(prev_hash + body.encode()).digest()


# The same canonical bytes, made by PostgreSQL, so that whole chains are verified in one set-based pass.
# Numbers print as digits, times as integer microseconds, everything else as a JSON string (to_json
# escapes as json.dumps(ensure_ascii=False) does); tests/test_audit_sql.py holds the two to each other.
_INT_FIELDS = frozenset({"seq", "credit_type_id", "serial_start", "serial_end"})
_TIME_FIELDS = frozenset({"occurred_at"})


def _sql_value(name: str) -> str:
    if name in _INT_FIELDS:
        return f"coalesce({name}::text, 'null')"
    if name in _TIME_FIELDS:
        return f"coalesce((extract(epoch FROM {name}) * 1000000)::bigint::text, 'null')"
    return f"coalesce(to_json({name})::text, 'null')"


def canonical_sql(fields: tuple[str, ...] = HASHED_FIELDS) -> str:
    return "convert_to('[' || " + " || ',' || ".join(_sql_value(n) for n in fields) + " || ']', 'UTF8')"


def hash_sql(fields: tuple[str, ...] = HASHED_FIELDS) -> str:
    return f"sha256(prev_hash || {canonical_sql(fields)})"


CANONICAL_SQL = canonical_sql()
# The unit trail's hash as the database computes it when it writes an event (registry_move, migration 0012):
# one SQL definition for the writer and the verifier (an inlined SQL function: no cost per row).
HASH_SQL = "registry_event_hash(prev_hash, " + ", ".join(HASHED_FIELDS) + ")"


def link(prev_hash: bytes, event: Mapping[str, Any], fields: tuple[str, ...] = HASHED_FIELDS) -> bytes:
    return hashlib.sha256(prev_hash + canonical(event, fields)).digest()


def digest_of_heads(heads: list[tuple[UUID, int, bytes]]) -> str:
    """One digest over every chain's head, sorted: what an exchange can publish to anchor the trail."""
    h = hashlib.sha256()
    for account_id, seq, head in sorted(heads):
        h.update(account_id.bytes + seq.to_bytes(8, "big") + head)
    return h.hexdigest()
