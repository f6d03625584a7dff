"""Types shared by every schema: checked text, strict integers, decimal strings, days, pages, problems.

Request bodies are validated once, here: an integer is a JSON integer (not `true`, `"5"` or `1000.0`),
money is a decimal string (not a JSON number, which a client's float has already rounded), a day is an
ISO date string (not a Unix timestamp), and free text follows `registry.text` like every other door."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import partial
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from registry import text

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
CreditTypeCode = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_-]{1,15}$")]

# Strict: pydantic would otherwise take `true` as 1 and "5" or 5.0 as 5.
SERIAL_MAX = (1 << 40) - 1
Quantity = Annotated[
    int, Field(strict=True, ge=1, le=10**12, description="Whole units (1 unit = 1 tCO2e for CCER).")
]
Serial = Annotated[int, Field(strict=True, ge=1, le=SERIAL_MAX)]
Vintage = Annotated[int, Field(strict=True, ge=1990, le=2100, description="year of the reductions")]


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


# A calendar day as ISO 8601 text (pydantic would also take a number as a Unix timestamp).
Day = Annotated[date, BeforeValidator(_day_string)]


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, object]] | None = None
