from __future__ import annotations

from uuid import UUID

from registry.errors import InvalidState, RegistryError


class InsufficientUnits(RegistryError):
    code = "insufficient_units"
    title = "Not enough units"
    message = "Not enough units: {available} {unit_status} {credit_type} units, {requested} asked."

    def __init__(
        self, *, account_id: UUID, credit_type: str, status: str, requested: int, available: int
    ) -> None:
        super().__init__(
            f"account {account_id} has {available} {status} {credit_type} units, {requested} requested",
            account_id=str(account_id),
            credit_type=credit_type,
            unit_status=status,
            requested=requested,
            available=available,
        )


class BlocksNotAvailable(RegistryError):
    """Named serial blocks that the account does not hold in the required status."""

    code = "insufficient_units"
    title = "Not enough units"
    message = "The account does not hold these {credit_type} serials as {unit_status}."

    def __init__(
        self, *, account_id: UUID, credit_type: str, status: str, missing: list[tuple[int, int]]
    ) -> None:
        shown = ", ".join(f"{s}-{e}" for s, e in missing[:5]) + (" …" if len(missing) > 5 else "")
        super().__init__(
            f"account {account_id} does not hold {credit_type} serials {shown} as {status}",
            account_id=str(account_id),
            credit_type=credit_type,
            unit_status=status,
            missing=[{"serial_start": s, "serial_end": e} for s, e in missing],
        )


class AccountClosed(InvalidState):
    message = "The account is closed."

    def __init__(self, account_id: UUID) -> None:
        super().__init__(f"account {account_id} is closed", account_id=str(account_id))


class SerialSpaceExhausted(InvalidState):
    message = "{credit_type} has {left} serial numbers left, {requested} asked."

    def __init__(self, credit_type: str, requested: int, left: int) -> None:
        super().__init__(
            f"{credit_type} has {left} serial numbers left, {requested} requested",
            credit_type=credit_type,
            requested=requested,
            left=left,
        )
