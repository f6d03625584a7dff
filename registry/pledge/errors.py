from __future__ import annotations

from decimal import Decimal

from registry.errors import InvalidState, RegistryError


class FourEyesRequired(InvalidState):
    """The operator who first reviewed a disposal cannot also be the one who confirms it."""

    def __init__(self, operator: str) -> None:
        super().__init__(
            f"four eyes: {operator} reviewed this disposal; another exchange operator must confirm it",
            reviewed_by=operator,
        )


class PledgeRateExceeded(RegistryError):
    """The loan is too large for the collateral at today's reference price."""

    code = "pledge_rate_exceeded"
    title = "Pledge rate above the lender's maximum"

    def __init__(self, *, pledge_rate: Decimal, maximum: Decimal, price: Decimal, value: Decimal) -> None:
        super().__init__(
            f"pledge rate {pledge_rate} (principal / collateral value {value} at {price} per unit) is above "
            f"the maximum {maximum}",
            field="loan.principal",
            pledge_rate=str(pledge_rate),
            max_pledge_rate=str(maximum),
            price=str(price),
            collateral_value=str(value),
        )
