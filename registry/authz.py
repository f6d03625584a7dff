"""Authorization as plain policy functions. Services call them; a refusal is a domain error.

Tenant rule: a principal that may not see a resource is told it does not exist (NotFound), so that
ids cannot be probed; a principal whose role may never do an action is told Forbidden."""

from __future__ import annotations

from uuid import UUID

from registry.errors import Forbidden, NotFound
from registry.principal import Principal, Role

WRITERS_OF_REFERENCE_DATA = (Role.EXCHANGE, Role.SYSTEM)
READERS_OF_EVERYTHING = (Role.EXCHANGE, Role.AUDITOR, Role.SYSTEM)


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        allowed = ", ".join(r.value for r in roles if r is not Role.SYSTEM)
        raise Forbidden(
            f"role {principal.role.value} may not do this; allowed: {allowed}", role=principal.role.value
        )


def require_party_visible(
    principal: Principal, party_id: UUID, *, kind: str = "party", ident: object = None
) -> None:
    """Banks and holders see only what belongs to their own party."""
    if principal.sees_everything:
        return
    if principal.party_id != party_id:
        raise NotFound(kind, ident if ident is not None else party_id)


def party_scope(principal: Principal) -> UUID | None:
    """The party a listing is limited to; None means all parties."""
    if principal.sees_everything:
        return None
    if principal.party_id is None:
        raise Forbidden("this key has no party")
    return principal.party_id
