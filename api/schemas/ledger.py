from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from api.schemas.common import (
    MAX_NAMED_BLOCKS,
    CreditTypeCode,
    Name,
    Page,
    Quantity,
    Reason,
    Schema,
    Serial,
    ShortText,
    Vintage,
)
from registry.ledger.models import AccountStatus, BlockStatus, PartyKind
from registry.ledger.settlement import MAX_LINES

# 统一社会信用代码 (GB 32100-2015): 18 characters; the checksum is verified by the service.
CreditCode = Field(
    default=None,
    pattern=r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$",
    description="Unified social credit code (统一社会信用代码), 18 characters.",
)


class PartyCreate(Schema):
    name: Name
    kind: PartyKind
    credit_code: str | None = CreditCode


class PartyRead(BaseModel):
    id: UUID
    name: str
    kind: PartyKind
    credit_code: str | None
    created_at: datetime


class AccountCreate(Schema):
    party_id: UUID


class AccountRead(BaseModel):
    id: UUID
    number: str
    party_id: UUID
    status: AccountStatus
    created_at: datetime


class CreditTypeCreate(Schema):
    code: CreditTypeCode
    name: Name
    unit: ShortText = "tCO2e"


class ProjectTypeCreate(Schema):
    code: Annotated[
        str, Field(pattern=r"^[a-z][a-z0-9_]{1,31}$", description="as issuances name it, e.g. forestry")
    ]
    name_zh: Name
    name_en: Name


class ProjectTypeRead(BaseModel):
    code: str
    name_zh: str
    name_en: str


class CreditTypeRead(BaseModel):
    code: str
    name: str
    unit: str
    serials_issued: int = Field(description="Serials allocated so far (the next batch starts after them).")
    created_at: datetime


class IssuanceCreate(Schema):
    credit_type: CreditTypeCode
    project_code: ShortText
    project_type: ShortText
    vintage: Vintage
    quantity: Quantity
    account_id: UUID


class IssuanceRead(BaseModel):
    id: UUID
    credit_type: str
    project_code: str
    project_type: str
    vintage: int
    quantity: int
    serial_start: int
    serial_end: int
    account_id: UUID
    issued_at: datetime


class BlockRef(Schema):
    credit_type: CreditTypeCode
    serial_start: Serial
    serial_end: Serial

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.serial_start > self.serial_end:
            raise ValueError("serial_start must not be after serial_end")
        return self


class UnitsSelection(Schema):
    """Which units: `quantity` of `credit_type` (lowest serials first), or named `blocks`."""

    quantity: Quantity | None = None
    credit_type: CreditTypeCode | None = None
    blocks: list[BlockRef] | None = Field(default=None, min_length=1, max_length=MAX_NAMED_BLOCKS)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.quantity is None) == (self.blocks is None):
            raise ValueError("give either quantity (with credit_type) or blocks")
        if self.quantity is not None and self.credit_type is None:
            raise ValueError("a quantity needs its credit_type")
        return self


class TransferCreate(UnitsSelection):
    from_account_id: UUID
    to_account_id: UUID


class TransferLine(TransferCreate):
    ref: ShortText | None = Field(
        default=None, description="your reference for the trade (kept in the trail)"
    )


class TransferBatchCreate(Schema):
    transfers: list[TransferLine] = Field(min_length=1, max_length=MAX_LINES)


class RetirementCreate(UnitsSelection):
    account_id: UUID
    reason: Reason | None = None


class MovedBlockRead(BaseModel):
    credit_type: str
    batch_id: UUID
    serial_start: int
    serial_end: int
    quantity: int


class MovementRead(BaseModel):
    quantity: int
    blocks: list[MovedBlockRead]


class TransferRead(MovementRead):
    from_account_id: UUID
    to_account_id: UUID


class TransferResult(TransferRead):
    line: int = Field(description="1-based, in the order sent")
    ref: str | None


class TransferBatchRead(BaseModel):
    transfers: int
    quantity: int
    results: list[TransferResult]


class RetirementRead(MovementRead):
    account_id: UUID
    reason: str | None


class HoldingRead(BaseModel):
    credit_type: str
    batch: UUID
    project_code: str
    project_type: str
    vintage: int
    serial_start: int
    serial_end: int
    quantity: int
    status: BlockStatus
    pledge_id: UUID | None


class HoldingTotal(BaseModel):
    credit_type: str
    status: BlockStatus
    quantity: int
    blocks: int


class HoldingsPage(Page[HoldingRead]):
    account_id: UUID
    totals: list[HoldingTotal]


class PartyPage(Page[PartyRead]):
    pass


class AccountPage(Page[AccountRead]):
    pass


class CreditTypePage(Page[CreditTypeRead]):
    pass


class IssuancePage(Page[IssuanceRead]):
    pass


class ProjectTypePage(Page[ProjectTypeRead]):
    pass
