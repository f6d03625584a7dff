"""API keys: made once and shown once, kept as a SHA-256 digest, found by a public prefix.

Keys carry 256 random bits, so a fast digest is enough (a slow password hash would only cost
throughput); the comparison is constant-time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import text
from sqlmodel import Session

from registry.access.models import ApiKey
from registry.errors import InvalidInput
from registry.ledger.models import Party, PartyKind
from registry.principal import Principal, Role

# Which kind of party may hold a key of which role.
ROLE_PARTY_KINDS: dict[Role, tuple[PartyKind, ...]] = {
    Role.EXCHANGE: (PartyKind.EXCHANGE,),
    Role.BANK: (PartyKind.BANK,),
    Role.HOLDER: (PartyKind.ENTERPRISE,),
    Role.AUDITOR: (PartyKind.AUDITOR, PartyKind.EXCHANGE),
}
DEFAULT_PARTY_KIND = {
    Role.EXCHANGE: PartyKind.EXCHANGE,
    Role.BANK: PartyKind.BANK,
    Role.HOLDER: PartyKind.ENTERPRISE,
    Role.AUDITOR: PartyKind.AUDITOR,
}


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: str  # the secret: shown once, never stored
    record: ApiKey


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def create_key(
    session: Session, *, party: Party, role: Role, operator: str | None, now: datetime
) -> IssuedKey:
    if role not in ROLE_PARTY_KINDS:
        raise InvalidInput("role", f"no API keys for role {role.value}")
    if PartyKind(party.kind) not in ROLE_PARTY_KINDS[role]:
        raise InvalidInput("role", f"a {party.kind} party cannot hold a {role.value} key")
    prefix = secrets.token_hex(6)
    key = f"rk_{prefix}_{secrets.token_urlsafe(32)}"
    record = ApiKey(
        prefix=prefix,
        digest=digest(key),
        party_id=party.id,
        role=role,
        operator=operator,
        created_at=now,
    )
    session.add(record)
    session.flush()
    return IssuedKey(key, record)


def authenticate(session: Session, key: str) -> Principal | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "rk" or not parts[1] or len(key) > 200:
        return None
    row = session.execute(
        text(
            "SELECT id, digest, party_id, role, operator FROM api_key WHERE prefix = :p AND revoked_at IS NULL"
        ),
        {"p": parts[1]},
    ).first()
    if row is None or not hmac.compare_digest(bytes(row.digest), digest(key)):
        return None
    return Principal(party_id=row.party_id, role=Role(row.role), key_id=row.id, operator=row.operator)


def revoke(session: Session, *, key_id: UUID, now: datetime) -> bool:
    result = session.execute(
        text("UPDATE api_key SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL"),
        {"now": now, "id": key_id},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
