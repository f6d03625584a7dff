"""Who may see and acknowledge an alert: alerts are the lender's. The bank that holds the pledge, the
exchange and auditors read them; the bank and the exchange acknowledge; a borrower or pledgor has none
(its own view of the pledge is the certificate and the valuation, not the margin calls on it)."""

from __future__ import annotations

from uuid import UUID

from registry import authz
from registry.errors import NotFound
from registry.principal import Principal, Role

READERS = (Role.BANK, Role.EXCHANGE, Role.AUDITOR, Role.SYSTEM)
ACKNOWLEDGERS = (Role.BANK, Role.EXCHANGE)
WEBHOOK_OWNERS = (Role.BANK,)  # a bank sets its own endpoint; nobody sets one for another party


def may_read(principal: Principal) -> bool:
    return principal.role in READERS


def require_reader(principal: Principal) -> UUID | None:
    """The bank a listing of alerts is limited to (None: all banks')."""
    authz.require_role(principal, *READERS)
    return authz.party_scope(principal)


def require_acknowledger(principal: Principal) -> None:
    authz.require_role(principal, *ACKNOWLEDGERS)


def require_own(principal: Principal, alert_id: int, pledgee_party_id: UUID | None) -> None:
    """`pledgee_party_id` is None for an alert that does not exist: to a bank, another bank's alert and
    no alert are the same 404."""
    if pledgee_party_id is None or (principal.role is Role.BANK and pledgee_party_id != principal.party_id):
        raise NotFound("alert", alert_id)


def require_webhook_owner(principal: Principal) -> None:
    authz.require_role(principal, *WEBHOOK_OWNERS)
