"""The ledger's primitives for the pledge lifecycle (`move_pledged` for each kind of PLEDGE_MOVES; `hold`,
`freeze` and `dispose` name the moves whose arguments differ): a pledge's units held, frozen, released and disposed of
in the pledgor's account. The pledge service authorizes each step and calls these; the database's
transition trigger allows exactly the moves of PLEDGE_MOVES (plus transfers and retirements)."""

from __future__ import annotations

from uuid import UUID

from sqlmodel import Session

from registry.audit.models import EventKind
from registry.errors import InvalidInput
from registry.ledger.repository import State
from registry.ledger.service import ALL, AVAILABLE, FROZEN, HELD, Movement, Selection, move_units
from registry.principal import Actor

# Block transitions of the pledge lifecycle, as data: kind -> (source status, target status, target keeps
# the pledge). The database's transition trigger allows exactly these (plus transfer and retirement).
PLEDGE_MOVES: dict[EventKind, tuple[str, str, bool]] = {
    EventKind.HOLD: (AVAILABLE, HELD, True),  # a bank asked: nobody can move these units meanwhile
    EventKind.RELEASE_HOLD: (HELD, AVAILABLE, False),  # request rejected, cancelled or lapsed
    EventKind.FREEZE: (HELD, FROZEN, True),  # the exchange confirmed: pledged
    EventKind.UNFREEZE: (FROZEN, AVAILABLE, False),  # released after repayment
    EventKind.DISPOSE: (FROZEN, AVAILABLE, False),  # default: to the lender's or a buyer's account
}


def move_pledged(
    session: Session,
    actor: Actor,
    kind: EventKind,
    *,
    account_id: UUID,
    pledge_id: UUID,
    selection: Selection = ALL,
    to_account_id: UUID | None = None,
    reason: str | None = None,
) -> Movement:
    """One step of a pledge's units in the pledgor's account. An empty selection means all of the
    pledge's units in the source status; a disposal moves them to `to_account_id`."""
    source_status, target_status, keeps_pledge = PLEDGE_MOVES[kind]
    if kind is EventKind.HOLD and selection.everything:
        raise InvalidInput("quantity", "say how many units, or which blocks, to hold")
    target_account = account_id
    if kind is EventKind.DISPOSE:
        if to_account_id is None or to_account_id == account_id:
            raise InvalidInput("to_account_id", "disposal moves units to another account")
        target_account = to_account_id
    return move_units(
        session,
        actor,
        kind,
        State(account_id, source_status, None if source_status == AVAILABLE else pledge_id),
        State(target_account, target_status, pledge_id if keeps_pledge else None),
        selection,
        reason=reason,
        require_active=(target_account,) if kind in (EventKind.HOLD, EventKind.DISPOSE) else (),
    )


def hold(
    session: Session, actor: Actor, *, account_id: UUID, pledge_id: UUID, selection: Selection
) -> Movement:
    return move_pledged(
        session, actor, EventKind.HOLD, account_id=account_id, pledge_id=pledge_id, selection=selection
    )


def freeze(session: Session, actor: Actor, *, account_id: UUID, pledge_id: UUID) -> Movement:
    return move_pledged(session, actor, EventKind.FREEZE, account_id=account_id, pledge_id=pledge_id)


def dispose(
    session: Session,
    actor: Actor,
    *,
    account_id: UUID,
    pledge_id: UUID,
    to_account_id: UUID,
    selection: Selection = ALL,
    reason: str | None = None,
) -> Movement:
    return move_pledged(
        session,
        actor,
        EventKind.DISPOSE,
        account_id=account_id,
        pledge_id=pledge_id,
        selection=selection,
        to_account_id=to_account_id,
        reason=reason,
    )
