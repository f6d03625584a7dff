"""Types shared by every schema: checked text, strict integers, decimal strings, days, pages, problems.

Request bodies are validated once, here: an integer is a JSON integer (not `true`, `"5"` or `1000.0`),
money is a decimal string (not a JSON number, which a client's float has already rounded), a day is an
ISO date string (not a Unix timestamp), and free text follows `registry.text` like every other door."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import partial
from typing import Annotated, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from registry import money, text
from registry.ledger.models import CREDIT_TYPE_CODE, SERIAL_MAX, VINTAGE_MAX, VINTAGE_MIN
from registry.ledger.service import MAX_QUANTITY

T = TypeVar("T")


def _clean(max_length: int) -> AfterValidator:
    """Checked by the registry's one text rule (registry/text.py), as the console and the CLI check it."""
    return AfterValidator(partial(text.clean, max_length=max_length))


def _documented(max_length: int) -> WithJsonSchema:
    return WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": text.PATTERN}
    )


Name = Annotated[str, _clean(text.NAME_MAX), _documented(text.NAME_MAX)]
ShortText = Annotated[str, _clean(text.SHORT_MAX), _documented(text.SHORT_MAX)]
Reason = Annotated[str, _clean(text.REASON_MAX), _documented(text.REASON_MAX)]
CreditTypeCode = Annotated[str, Field(pattern=CREDIT_TYPE_CODE)]

# Strict: pydantic would otherwise take `true` as 1 and "5" or 5.0 as 5.
Quantity = Annotated[
    int, Field(strict=True, ge=1, le=MAX_QUANTITY, description="Whole units (1 unit = 1 tCO2e for CCER).")
]
Serial = Annotated[int, Field(strict=True, ge=1, le=SERIAL_MAX)]
Vintage = Annotated[
    int, Field(strict=True, ge=VINTAGE_MIN, le=VINTAGE_MAX, description="year of the reductions")
]
# Blocks a request may name one by one (an API bound: the registry takes any number).
MAX_NAMED_BLOCKS = 1000


def _decimal_string(value: object) -> object:
    if isinstance(value, str | Decimal):
        return value
    raise ValueError('a decimal string such as "68.50", not a JSON number')


# Before the Decimal it annotates: money and prices come as decimal strings (API.md), never as JSON numbers.
DecimalString = BeforeValidator(_decimal_string)


def decimal_schema(pattern: str, description: str) -> WithJsonSchema:
    """What the OpenAPI document says of a decimal string (pydantic would also offer a number)."""
    return WithJsonSchema({"type": "string", "pattern": pattern, "description": description})


def _day_string(value: object) -> object:
    if isinstance(value, str | date):
        return value
    raise ValueError('a date string such as "2026-03-02"')


# What the API writes: money and ratios as decimal strings of fixed places (registry/money.py), whatever
# scale the value had; the attribute stays a Decimal for the code that reads it (the console).
MoneyOut = Annotated[
    Decimal,
    PlainSerializer(money.money_text, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": money.MONEY_PATTERN, "description": 'CNY, two places: "1000000.00"'}
    ),
]
RatioOut = Annotated[
    Decimal,
    PlainSerializer(money.ratio_text, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": money.RATIO_PATTERN, "description": 'four places: "1.3000"'}
    ),
]


# A calendar day as ISO 8601 text (pydantic would also take a number as a Unix timestamp).
Day = Annotated[date, BeforeValidator(_day_string)]


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class FieldError(BaseModel):
    """One field a request got wrong (a `validation_error` lists each)."""

    field: str = Field(
        description="where, dotted: `loan.principal` or `blocks.0.serial_end` in the body; `query.limit`, "
        "`path.pledge_id`, `header.Idempotency-Key` for a parameter"
    )
    message: str
    type: str | None = Field(default=None, description="the kind of mistake, e.g. `missing`, `json_invalid`")


class Problem(BaseModel):
    """RFC 9457 problem details, sent as `application/problem+json`. `code` is stable; other members give
    the context of some codes (e.g. `pledge_id` for `loan_already_pledged`, `available` for
    `insufficient_units`, `retry_after` for `rate_limited`)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`https://registry.example/problems/<code>`")
    title: str
    status: int
    detail: str
    code: str = Field(description="stable: what a client branches on")
    instance: str | None = Field(default=None, description="the request's path")
    request_id: str | None = None
    field: str | None = Field(default=None, description="the field a refusal is about, when there is one")
    errors: list[FieldError] | None = Field(
        default=None, description="`validation_error` of the request's shape: every field that is wrong"
    )
