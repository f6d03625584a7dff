"""Who is acting: the authenticated principal and the stamp every change carries into the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class Role(StrEnum):
    EXCHANGE = "exchange"  # the exchange's back office: keeps the accounts, confirms, sees all
    BANK = "bank"  # a lending bank (pledgee): its own pledges only
    HOLDER = "holder"  # a borrower or pledgor: reads its own accounts and pledges
    AUDITOR = "auditor"  # read-only, sees all
    SYSTEM = "system"  # the registry itself: CLI, scheduled jobs


@dataclass(frozen=True, slots=True)
class Principal:
    party_id: UUID | None
    role: Role
    key_id: UUID | None = None
    operator: str | None = None  # the person behind the key, for maker-checker and the audit trail

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.EXCHANGE, Role.AUDITOR, Role.SYSTEM)


SYSTEM = Principal(party_id=None, role=Role.SYSTEM, operator="registry")


@dataclass(frozen=True, slots=True)
class Actor:
    """A principal acting at a moment, for a request: what the audit trail records as 'who, when, why'."""

    principal: Principal
    at: datetime
    request_id: str | None = None
    on_behalf_of: UUID | None = None  # the party that asked (e.g. the bank whose instruction this is)
    instruction_id: UUID | None = None

    def for_instruction(self, instruction_id: UUID, on_behalf_of: UUID | None) -> Actor:
        return Actor(self.principal, self.at, self.request_id, on_behalf_of, instruction_id)
