from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from api.schemas.certificates import CertificateRead
from api.schemas.common import (
    MAX_NAMED_BLOCKS,
    Day,
    DecimalString,
    MoneyOut,
    Page,
    Quantity,
    RatioOut,
    Reason,
    Schema,
    ShortText,
    decimal_schema,
)
from api.schemas.ledger import BlockRef, UnitsSelection
from api.schemas.valuation import ValuationRead
from registry.ledger.models import BlockStatus, PartyKind
from registry.pledge.models import MAX_LINE_RATIO
from registry.pledge.rules import MAX_PRINCIPAL
from registry.pledge.states import InstructionStatus, InstructionType, PledgeStatus
from registry.valuation.models import ValuationLevel, ValuationMethod

# Money and ratios are decimal strings (API.md): a JSON number has already been rounded by a client's float.
_MONEY = r"^\d{1,13}(\.\d{1,2})?$"
Money = Annotated[
    Decimal,
    DecimalString,
    Field(gt=0, le=MAX_PRINCIPAL, max_digits=15, decimal_places=2),
    decimal_schema(_MONEY, 'CNY as a decimal string, e.g. "1000000.00"'),
]
MoneyOrZero = Annotated[
    Decimal,
    DecimalString,
    Field(ge=0, le=MAX_PRINCIPAL, max_digits=15, decimal_places=2),
    decimal_schema(_MONEY, 'CNY as a decimal string, e.g. "400000.00"'),
]
Ratio = Annotated[
    Decimal,
    DecimalString,
    Field(gt=0, le=MAX_LINE_RATIO, max_digits=7, decimal_places=4),
    decimal_schema(r"^\d{1,2}(\.\d{1,4})?$", 'a ratio as a decimal string, e.g. "1.30"'),
]
Fraction = Annotated[
    Decimal,
    DecimalString,
    Field(ge=0, le=1, max_digits=5, decimal_places=4),
    decimal_schema(r"^[01](\.\d{1,4})?$", 'a fraction as a decimal string, e.g. "0.70"'),
]


class LoanIn(Schema):
    contract_no: ShortText
    principal: Money
    currency: Literal["CNY"] = "CNY"
    start_date: Day
    maturity_date: Day

    @model_validator(mode="after")
    def _term(self) -> Self:
        if self.maturity_date <= self.start_date:
            raise ValueError("maturity_date must come after start_date")
        return self


class CollateralIn(UnitsSelection):
    """The units to pledge, all of one credit type."""


class TermsIn(Schema):
    max_pledge_rate: Fraction = Field(description="loan principal / collateral value cap, e.g. 0.70")
    warning_ratio: Ratio = Field(description="coverage warning line (警戒线), e.g. 1.30")
    disposal_ratio: Ratio = Field(description="coverage disposal line (处置线), e.g. 1.10")
    valuation_method: ValuationMethod = ValuationMethod.LOWER_OF
    haircut: Fraction = Decimal(0)

    @model_validator(mode="after")
    def _lines(self) -> Self:
        if self.disposal_ratio >= self.warning_ratio:
            raise ValueError("disposal_ratio must be below warning_ratio")
        return self


class ExternalRefs(Schema):
    pboc_registration_no: ShortText | None = Field(
        default=None, description="动产融资统一登记公示系统 number"
    )
    bank_ref: ShortText | None = None


class PledgeCreate(Schema):
    pledgor_account_id: UUID = Field(
        description="the pledgor's registry account: `GET /v1/accounts/lookup?number=&credit_code=`"
    )
    borrower_party_id: UUID
    pledgee_party_id: UUID | None = Field(
        default=None,
        description="a pledgor asking for its own account names the lending bank here; a bank leaves it out",
    )
    loan: LoanIn
    collateral: CollateralIn
    terms: TermsIn
    external_refs: ExternalRefs | None = None


class InstructionCreate(Schema):
    type: Literal["top_up", "release", "dispose"]
    quantity: Quantity | None = None
    blocks: list[BlockRef] | None = Field(default=None, min_length=1, max_length=MAX_NAMED_BLOCKS)
    reason: Reason | None = None
    outstanding_principal: MoneyOrZero | None = Field(
        default=None, description="release: the loan's outstanding principal after the repayment"
    )
    to_account_id: UUID | None = Field(
        default=None, description="dispose: the bank's account to receive the units"
    )

    @model_validator(mode="after")
    def _not_both(self) -> Self:
        if self.quantity is not None and self.blocks is not None:
            raise ValueError("give either quantity or blocks, not both")
        return self


class ConfirmBody(Schema):
    buyer_account_id: UUID | None = Field(default=None, description="dispose: a buyer's account (auction)")
    price: MoneyOrZero | None = Field(default=None, description="dispose: price per unit")
    proceeds: MoneyOrZero | None = Field(
        default=None, description="dispose: proceeds collected (价款代收代付)"
    )


class RejectBody(Schema):
    reason: Reason


class DeclineBody(Schema):
    reason: Reason = Field(
        description="why the pledgor (or the bank) does not agree; shown to the other party"
    )


class ReviewRead(BaseModel):
    """A disposal's terms as the first operator reviewed them: what the second applies, exactly."""

    by: str
    at: datetime
    to_account_id: UUID
    price: MoneyOut | None
    proceeds: MoneyOut | None


class AssessmentRead(BaseModel):
    """A registration or top-up valued at today's reference price, as the exchange would confirm it."""

    quantity: int = Field(description="the pledge's units once this request goes through")
    price: MoneyOut | None
    price_date: date | None
    stale: bool
    collateral_value: MoneyOut | None
    pledge_rate: RatioOut | None
    coverage_ratio: RatioOut | None
    level: ValuationLevel | None
    within_terms: bool = Field(
        description="the pledge rate is within the cap and coverage above the disposal line"
    )


class InstructionRead(BaseModel):
    id: UUID
    pledge_id: UUID
    type: InstructionType
    status: InstructionStatus
    quantity: int | None
    blocks: list[BlockRef] | None
    reason: str | None
    outstanding_principal: MoneyOut | None
    to_account_id: UUID | None
    price: MoneyOut | None
    proceeds: MoneyOut | None
    requested_by_party_id: UUID
    requested_by_operator: str | None
    consent_party_id: UUID | None = Field(
        description="joint application: the party whose consent this waits for (or got)"
    )
    consented_by: str | None
    consented_at: datetime | None
    created_at: datetime
    hold_expires_at: datetime | None = Field(
        description="when the request lapses if nobody consents (awaiting_consent) or confirms (pending)"
    )
    reviewed_by: str | None
    reviewed_at: datetime | None
    review: ReviewRead | None = Field(description="a disposal's reviewed terms")
    assessment: AssessmentRead | None = Field(
        default=None, description="an open registration or top-up at today's reference price"
    )
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    applied_quantity: int | None


class PledgedBlock(BaseModel):
    credit_type: str
    batch: UUID
    project_code: str
    project_type: str
    vintage: int
    serial_start: int
    serial_end: int
    quantity: int
    status: Literal[BlockStatus.HELD, BlockStatus.FROZEN]


class LoanRead(BaseModel):
    contract_no: str
    principal: MoneyOut
    outstanding_principal: MoneyOut
    currency: str
    start_date: date
    maturity_date: date


class TermsRead(BaseModel):
    max_pledge_rate: RatioOut
    warning_ratio: RatioOut
    disposal_ratio: RatioOut
    valuation_method: ValuationMethod
    haircut: RatioOut


class AccountLookupRead(BaseModel):
    """What a bank may know of a pledgor's account from the number and the credit code it was given."""

    id: UUID
    number: str
    party_id: UUID
    party_name: str


class PartyLookupRead(BaseModel):
    """A borrower named by its unified social credit code: who it is, nothing of what it holds."""

    id: UUID
    name: str
    kind: PartyKind


class PledgeRead(BaseModel):
    id: UUID
    status: PledgeStatus
    registration_no: str | None
    pledgee_party_id: UUID
    pledgor_account_id: UUID
    pledgor_party_id: UUID
    borrower_party_id: UUID
    credit_type: str
    quantity: int = Field(description="units frozen for this pledge")
    held_quantity: int = Field(description="units held for an instruction still waiting")
    loan: LoanRead
    terms: TermsRead
    external_refs: ExternalRefs
    blocks: list[PledgedBlock]
    valuation: ValuationRead | None = Field(
        description="the latest valuation; null until the pledge is first valued"
    )
    instructions: list[InstructionRead]
    certificate: CertificateRead | None = Field(
        description="the latest certificate version; null until the registration is confirmed"
    )
    created_at: datetime
    hold_expires_at: datetime | None
    confirmed_at: datetime | None
    closed_at: datetime | None


class PledgePage(Page[PledgeRead]):
    pass


class InstructionPage(Page[InstructionRead]):
    pass
