"""Who may do what to a pledge, for that pledge: plain functions the services call; a refusal is a domain
error. A principal that may not see a pledge is told it does not exist (NotFound); one that sees it but
may not take the action is told Forbidden, with no more than it already sees."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from registry.errors import Forbidden, NotFound
from registry.pledge.models import Instruction, Pledge
from registry.principal import Principal, Role

# The roles whose keys or console users act for a party of a pledge (the bank or the pledgor).
PARTY_ROLES = (Role.BANK, Role.HOLDER)


def can_see(principal: Principal, pledge: Pledge) -> bool:
    """Banks see their own pledges; holders those they pledged or borrow against; the exchange and
    auditors all of them."""
    if principal.sees_everything:
        return True
    if principal.role is Role.BANK:
        return pledge.pledgee_party_id == principal.party_id
    if principal.role is Role.HOLDER:
        return principal.party_id in (pledge.pledgor_party_id, pledge.borrower_party_id)
    return False


def require_visible(principal: Principal, pledge: Pledge | None, pledge_id: UUID) -> Pledge:
    if pledge is None or not can_see(principal, pledge):
        raise NotFound("pledge", pledge_id)
    return pledge


@dataclass(frozen=True, slots=True)
class PledgeScope:
    """What a listing of pledges is limited to. Made only by `scope_of`, so a query cannot forget it."""

    pledgee_party_id: UUID | None  # a bank: its own pledges
    holder_party_id: UUID | None  # a holder: those it pledged or borrows against

    @property
    def everything(self) -> bool:
        return self.pledgee_party_id is None and self.holder_party_id is None


def scope_of(principal: Principal) -> PledgeScope:
    if principal.sees_everything:
        return PledgeScope(None, None)
    if principal.party_id is None:
        raise Forbidden("this key has no party")
    if principal.role is Role.BANK:
        return PledgeScope(principal.party_id, None)
    return PledgeScope(None, principal.party_id)


def is_pledgor(principal: Principal, pledge: Pledge) -> bool:
    return principal.role in PARTY_ROLES and principal.party_id == pledge.pledgor_party_id


def is_pledgee(principal: Principal, pledge: Pledge) -> bool:
    return principal.role is Role.BANK and principal.party_id == pledge.pledgee_party_id


def other_side(pledge: Pledge, asked_by: UUID) -> UUID:
    """Whose consent a joint application waits for: the pledgor's when the bank asked, and the bank's when
    the pledgor asked."""
    return pledge.pledgor_party_id if asked_by == pledge.pledgee_party_id else pledge.pledgee_party_id


def require_consenter(principal: Principal, pledge: Pledge, instruction: Instruction) -> None:
    """Only the party the request waits for consents or declines: never the asker, the borrower, another
    bank or the exchange."""
    if principal.role in PARTY_ROLES and principal.party_id == instruction.consent_party_id:
        return
    whom = "the pledgor" if instruction.consent_party_id == pledge.pledgor_party_id else "the pledgee bank"
    raise Forbidden(f"only {whom} may consent to or decline this request", role=principal.role.value)


def require_asker(principal: Principal, instruction: Instruction) -> None:
    """A request is withdrawn only by the party that made it."""
    if principal.role in PARTY_ROLES and principal.party_id == instruction.requested_by_party_id:
        return
    raise Forbidden("only the party that asked may withdraw this request", role=principal.role.value)


def person(principal: Principal) -> str | None:
    """The person behind a principal, as four eyes and the trail compare them: a console user's name or the
    operator named on an API key (case and surrounding spaces do not make another person)."""
    name = (principal.operator or "").strip()
    return name.casefold() if name else None


def require_person(principal: Principal) -> str:
    """Four eyes compares persons, not keys: a key that names no operator cannot take part."""
    who = person(principal)
    if who is None or principal.role is Role.SYSTEM:
        raise Forbidden(
            "four eyes compares persons: this key names no operator (make one with `registry keys create "
            "--operator NAME`, or use the console)",
            role=principal.role.value,
        )
    return who


def decided_by(principal: Principal) -> str:
    """How a decision names who took it: the person, else the key."""
    return principal.operator or f"key:{principal.key_id}"
