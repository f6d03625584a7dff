"""The pledge state machine, written down once: the service follows it and the docs print it.

Two tables: (pledge status, instruction type, decision) -> pledge status after, and (instruction status,
decision) -> instruction status after. A pair that is not here is `409 invalid_state`.
`confirm_partial` is a confirmation that leaves units pledged."""

from __future__ import annotations

from enum import StrEnum


class PledgeStatus(StrEnum):
    PENDING = "pending"  # registration asked: waiting for the other party's consent, then the exchange
    ACTIVE = "active"  # confirmed: units frozen, registration number and certificate issued
    REJECTED = "rejected"
    DECLINED = "declined"  # the other party of the joint application refused
    CANCELLED = "cancelled"  # the party that asked withdrew its request
    EXPIRED = "expired"  # nobody confirmed in time: the hold lapsed
    RELEASED = "released"  # repaid: every unit back to the pledgor
    DISPOSED = "disposed"  # defaulted: units moved to the lender or a buyer


class InstructionType(StrEnum):
    REGISTER = "register"
    TOP_UP = "top_up"
    RELEASE = "release"
    DISPOSE = "dispose"


class InstructionStatus(StrEnum):
    AWAITING_CONSENT = "awaiting_consent"  # joint application: the other party has not agreed yet
    PENDING = "pending"  # in the exchange's queue
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Decision(StrEnum):
    CONSENT = "consent"  # the other party of a joint application agrees
    DECLINE = "decline"  # ... or refuses
    CONFIRM = "confirm"
    CONFIRM_PARTIAL = "confirm_partial"  # a release or disposal that leaves units pledged
    REJECT = "reject"
    CANCEL = "cancel"
    EXPIRE = "expire"


P, T, D, S = PledgeStatus, InstructionType, Decision, InstructionStatus

TRANSITIONS: dict[tuple[PledgeStatus, InstructionType, Decision], PledgeStatus] = {
    (P.PENDING, T.REGISTER, D.CONSENT): P.PENDING,
    (P.PENDING, T.REGISTER, D.DECLINE): P.DECLINED,
    (P.PENDING, T.REGISTER, D.CONFIRM): P.ACTIVE,
    (P.PENDING, T.REGISTER, D.REJECT): P.REJECTED,
    (P.PENDING, T.REGISTER, D.CANCEL): P.CANCELLED,
    (P.PENDING, T.REGISTER, D.EXPIRE): P.EXPIRED,
    (P.ACTIVE, T.TOP_UP, D.CONSENT): P.ACTIVE,
    (P.ACTIVE, T.TOP_UP, D.DECLINE): P.ACTIVE,
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

# What each decision does to the instruction it decides. The database's trigger instruction_decided_once
# allows exactly these moves (migration 0008).
INSTRUCTION_TRANSITIONS: dict[tuple[InstructionStatus, Decision], InstructionStatus] = {
    (S.AWAITING_CONSENT, D.CONSENT): S.PENDING,
    (S.AWAITING_CONSENT, D.DECLINE): S.DECLINED,
    (S.AWAITING_CONSENT, D.CANCEL): S.CANCELLED,
    (S.AWAITING_CONSENT, D.EXPIRE): S.EXPIRED,
    (S.PENDING, D.CONFIRM): S.CONFIRMED,
    (S.PENDING, D.CONFIRM_PARTIAL): S.CONFIRMED,
    (S.PENDING, D.REJECT): S.REJECTED,
    (S.PENDING, D.CANCEL): S.CANCELLED,
    (S.PENDING, D.EXPIRE): S.EXPIRED,
}
OPEN = frozenset({S.AWAITING_CONSENT, S.PENDING})

# What a bank may ask for in each pledge status (the registration is asked by creating the pledge).
REQUESTABLE: dict[PledgeStatus, frozenset[InstructionType]] = {
    P.ACTIVE: frozenset({T.TOP_UP, T.RELEASE, T.DISPOSE}),
}

CLOSED = frozenset({P.REJECTED, P.DECLINED, P.CANCELLED, P.EXPIRED, P.RELEASED, P.DISPOSED})

# Instructions whose units are held while they wait (and released if they do not go through): they put the
# pledgor's units at stake, so they are joint applications — the pledgee bank and the pledgor each agree,
# and the units are held only once the pledgor has.
HOLDS_UNITS = frozenset({T.REGISTER, T.TOP_UP})
NEEDS_CONSENT = HOLDS_UNITS
# Instructions the exchange confirms with four eyes: a second operator, other than the first reviewer.
FOUR_EYES = frozenset({T.DISPOSE})


def next_status(status: PledgeStatus, kind: InstructionType, decision: Decision) -> PledgeStatus | None:
    return TRANSITIONS.get((status, kind, decision))


def next_instruction_status(status: InstructionStatus, decision: Decision) -> InstructionStatus | None:
    return INSTRUCTION_TRANSITIONS.get((status, decision))


def table_markdown() -> str:
    rows = ["| pledge status | instruction | decision | pledge status after |", "|---|---|---|---|"]
    rows += [f"| {s} | {t} | {d} | {n} |" for (s, t, d), n in TRANSITIONS.items()]
    return "\n".join(rows)


def instruction_table_markdown() -> str:
    rows = ["| instruction status | decision | instruction status after |", "|---|---|---|"]
    rows += [f"| {s} | {d} | {n} |" for (s, d), n in INSTRUCTION_TRANSITIONS.items()]
    return "\n".join(rows)
