from __future__ import annotations

from datetime import date
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, Field

from api.schemas.common import MoneyOut, RatioOut


class BookLine(BaseModel):
    credit_type: str | None = Field(description="null on the total line")
    project_type: str | None
    vintage: int | None
    pledges: int
    units: int = Field(description="tCO2e pledged (frozen)")
    collateral_value: MoneyOut = Field(description="units × reference price × (1 − haircut), CNY")
    outstanding_principal: MoneyOut = Field(
        description="each pledge's outstanding principal, split by its units"
    )
    coverage_ratio: RatioOut | None = Field(
        description="collateral value / outstanding principal (principal-weighted)"
    )
    at_warning: int = Field(description="pledges valued at the warning level")
    at_disposal: int = Field(description="pledges valued at the disposal level")
    unvalued: int = Field(description="pledges with no reference price yet (valued at 0)")


class LadderRung(BaseModel):
    bucket: str = Field(
        description="days from the as-of date to maturity: overdue, 0-30, 31-90, 91-180, 181-365, over 365"
    )
    pledges: int
    outstanding_principal: MoneyOut
    collateral_value: MoneyOut


class BandRead(BaseModel):
    band: str = Field(description="coverage ratio band: under 1.10 … 2.00 and over, or unvalued")
    pledges: int


class CollateralBookRead(BaseModel):
    bank_id: UUID
    bank: str
    as_of: date
    lines: list[BookLine] = Field(description="by credit type, project type and vintage")
    total: BookLine
    ladder: list[LadderRung] = Field(description="the maturity ladder")
    coverage_bands: list[BandRead] = Field(description="how many pledges at each coverage level")


class MonthRead(BaseModel):
    month: str
    registered: int
    financing: MoneyOut


class PledgorRead(BaseModel):
    name: str
    pledges: int
    units: int


class ExchangeStatsRead(BaseModel):
    period_from: date
    period_to: date
    registered: int = Field(description="registrations confirmed in the period")
    released: int
    disposed: int
    financing_secured: MoneyOut = Field(description="principal of the pledges registered in the period, CNY")
    units_frozen: dict[str, int] = Field(description="credit type -> units frozen at the end of the period")
    largest_pledgors: list[PledgorRead] = Field(description="by units pledged at the end of the period")
    confirmation_hours_avg: Decimal | None = Field(description="request to confirmation, registrations")
    confirmation_hours_median: Decimal | None
    months: list[MonthRead]
