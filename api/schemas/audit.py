from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from api.schemas.common import Page
from registry.audit.models import EventKind
from registry.ledger.models import BlockStatus
from registry.principal import Role


class UnitPlace(BaseModel):
    account_id: UUID | None
    account_number: str | None
    party_id: UUID | None
    status: BlockStatus | None
    pledge_id: UUID | None


class UnitEventRead(BaseModel):
    id: int
    kind: EventKind
    occurred_at: datetime
    batch_id: UUID
    serial_start: int
    serial_end: int
    before: UnitPlace
    after: UnitPlace
    actor_role: Role
    actor_party_id: UUID | None
    operator: str | None
    on_behalf_of: UUID | None
    request_id: str | None
    instruction_id: UUID | None
    reason: str | None
    chain_account_id: UUID
    seq: int
    hash: str


class UnitHistoryPage(Page[UnitEventRead]):
    credit_type: str
    serial: int


class BadEventRead(BaseModel):
    id: int | None
    trail: str = Field(description="`units` (an account's chain) or `decisions` (a pledge's chain)")
    account_id: UUID | None = Field(description="the account whose unit chain it is")
    pledge_id: UUID | None = Field(description="the pledge whose decision chain it is")
    seq: int
    problem: str


class AuditVerifyRead(BaseModel):
    events: int
    chains: int
    head_hash: str
    ok: bool
    first_bad_event: BadEventRead | None = None
    bad_chains: int = 0
