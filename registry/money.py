"""How money and ratios are written wherever the registry hands them out: decimal strings, money with two
places (`"68.50"`), ratios with four (`"1.3000"`), never JSON numbers (a client's float has already
rounded them).

One rule in two forms: `money_text` / `ratio_text` for what Python writes (API responses, problem
details), `money_sql` / `ratio_sql` for what PostgreSQL writes itself (alert details, and so the webhook
payloads that copy them). Both round half away from zero, as PostgreSQL's `round` does; a test runs the
two forms on the same values."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
RATIO = Decimal("0.0001")

MONEY_PATTERN = r"^-?\d+\.\d{2}$"
RATIO_PATTERN = r"^-?\d+\.\d{4}$"


def _to(value: Decimal | int | str, places: Decimal) -> Decimal:
    rounded = Decimal(value).quantize(places, rounding=ROUND_HALF_UP)
    return abs(rounded) if rounded == 0 else rounded  # "0.00", as PostgreSQL writes it, not "-0.00"


def money(value: Decimal | int | str) -> Decimal:
    """To the fen."""
    return _to(value, CENT)


def ratio(value: Decimal | int | str) -> Decimal:
    """To four places: coverage ratios, pledge rates, the lender's lines and haircuts."""
    return _to(value, RATIO)


def money_text(value: Decimal | int | str) -> str:
    return f"{money(value):f}"  # `:f`: never an exponent ("1E+3")


def ratio_text(value: Decimal | int | str) -> str:
    return f"{ratio(value):f}"


def money_sql(expression: str) -> str:
    """The SQL that writes `expression` as `money_text` would (NULL stays NULL)."""
    return f"round(CAST(({expression}) AS numeric), 2)::text"


def ratio_sql(expression: str) -> str:
    return f"round(CAST(({expression}) AS numeric), 4)::text"
