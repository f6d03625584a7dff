"""The pledge state machine, written down once: the service follows it and the docs print it.

(pledge status, instruction type, decision) -> pledge status after. A pair that is not here is
`409 invalid_state`. 'partial' and 'all' say whether units remain pledged after a release or disposal."""

from __future__ import annotations

from enum import StrEnum


class PledgeStatus(StrEnum):
    PENDING = "pending"  # registration asked, units held, waiting for the exchange
    ACTIVE = "active"  # confirmed: units frozen, registration number and certificate issued
    REJECTED = "rejected"
    CANCELLED = "cancelled"  # the bank withdrew its request
    EXPIRED = "expired"  # nobody confirmed in time: the hold lapsed
    RELEASED = "released"  # repaid: every unit back to the pledgor
    DISPOSED = "disposed"  # defaulted: units moved to the lender or a buyer


class InstructionType(StrEnum):
    REGISTER = "register"
    TOP_UP = "top_up"
    RELEASE = "release"
    DISPOSE = "dispose"


class InstructionStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Decision(StrEnum):
    CONFIRM = "confirm"
    CONFIRM_PARTIAL = "confirm_partial"  # a release or disposal that leaves units pledged
    REJECT = "reject"
    CANCEL = "cancel"
    EXPIRE = "expire"


P, T, D = PledgeStatus, InstructionType, Decision

TRANSITIONS: dict[tuple[PledgeStatus, InstructionType, Decision], PledgeStatus] = {
    (P.PENDING, T.REGISTER, D.CONFIRM): P.ACTIVE,
    (P.PENDING, T.REGISTER, D.REJECT): P.REJECTED,
    (P.PENDING, T.REGISTER, D.CANCEL): P.CANCELLED,
    (P.PENDING, T.REGISTER, D.EXPIRE): P.EXPIRED,
    (P.ACTIVE, T.TOP_UP, D.CONFIRM): P.ACTIVE,
    (P.ACTIVE, T.TOP_UP, D.REJECT): P.ACTIVE,
    (P.ACTIVE, T.TOP_UP, D.CANCEL): P.ACTIVE,
    (P.ACTIVE, T.TOP_UP, D.EXPIRE): P.ACTIVE,
    (P.ACTIVE, T.RELEASE, D.CONFIRM): P.RELEASED,
    (P.ACTIVE, T.RELEASE, D.CONFIRM_PARTIAL): P.ACTIVE,
    (P.ACTIVE, T.RELEASE, D.REJECT): P.ACTIVE,
    (P.ACTIVE, T.RELEASE, D.CANCEL): P.ACTIVE,
    (P.ACTIVE, T.DISPOSE, D.CONFIRM): P.DISPOSED,
    (P.ACTIVE, T.DISPOSE, D.CONFIRM_PARTIAL): P.ACTIVE,
    (P.ACTIVE, T.DISPOSE, D.REJECT): P.ACTIVE,
    (P.ACTIVE, T.DISPOSE, D.CANCEL): P.ACTIVE,
}

# What a bank may ask for in each pledge status (the registration is asked by creating the pledge).
REQUESTABLE: dict[PledgeStatus, frozenset[InstructionType]] = {
    P.ACTIVE: frozenset({T.TOP_UP, T.RELEASE, T.DISPOSE}),
}

CLOSED = frozenset({P.REJECTED, P.CANCELLED, P.EXPIRED, P.RELEASED, P.DISPOSED})

# Instructions whose units are held while they wait (and released if they do not go through).
HOLDS_UNITS = frozenset({T.REGISTER, T.TOP_UP})
# Instructions the exchange confirms with four eyes: a second operator, other than the first reviewer.
FOUR_EYES = frozenset({T.DISPOSE})


def next_status(status: PledgeStatus, kind: InstructionType, decision: Decision) -> PledgeStatus | None:
    return TRANSITIONS.get((status, kind, decision))


def table_markdown() -> str:
    rows = ["| pledge status | instruction | decision | pledge status after |", "|---|---|---|---|"]
    rows += [f"| {s} | {t} | {d} | {n} |" for (s, t, d), n in TRANSITIONS.items()]
    return "\n".join(rows)
