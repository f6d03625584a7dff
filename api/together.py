"""Transfers written together: `POST /v1/transfers` requests that arrive while others are being written wait
for them, then go as one settlement batch in one transaction (registry/together.py has the protocol,
registry/ledger/settlement.py the batch). Each request keeps what it would have had alone: its own audit
events (its request id, key, operator and time), its own idempotency record and its own answer, byte for
byte the answer alone. Whatever the batch cannot do plainly (a line it refuses, a key already used) goes
back to be done alone, where the single transfer's path decides and words the refusal."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlmodel import Session

from registry import metrics
from registry.config import Settings
from registry.db import run
from registry.idempotency import service as idempotency
from registry.ledger import settlement
from registry.ledger.service import Movement
from registry.principal import Actor
from registry.together import ALONE, Alone, Combiner

CREATED = 201
BATCH_LOCK_TIMEOUT = "1s"


@dataclass(frozen=True, slots=True)
class Transfer:
    actor: Actor
    line: settlement.Line  # with its actor: the events are the request's own
    claim: idempotency.Claim | None


Render = Callable[[settlement.Line, Movement], bytes]  # the answer a transfer alone would give, as JSON


def combiner(
    settings: Settings,
    unit_of_work: Callable[[], AbstractContextManager[Session]],
    render: Render,
    *,
    patience: float = 0.5,
) -> Combiner[Transfer, bytes] | None:
    """The process's combiner of transfers (None when REGISTRY_TRANSFERS_TOGETHER is 0)."""
    if settings.transfers_together < 2:
        return None
    return Combiner(
        lambda transfers: write_together(unit_of_work, render, transfers),
        most=settings.transfers_together,
        lanes=settings.transfers_together_lanes,
        patience=patience,
        key=lambda t: (t.claim.key_id, t.claim.key) if t.claim is not None else None,
        observe=metrics.TOGETHER.observe,
        gave_back=metrics.TOGETHER_ALONE.inc,
    )


def write_together(
    unit_of_work: Callable[[], AbstractContextManager[Session]], render: Render, transfers: Sequence[Transfer]
) -> list[bytes | Alone]:
    """One transaction: the keys claimed in one statement, the transfers settled as one batch, each answer
    stored with its key. A line the batch refuses goes alone (and its key is given back); the batch is then
    settled once more without it, on the same locks, nothing of the refused attempt having been written."""
    outcomes: list[bytes | Alone] = [ALONE] * len(transfers)
    with unit_of_work() as session:
        # A batch waits for a lock held elsewhere for a second, not the ten a request alone may: then it
        # fails, and its transfers go alone, each waiting only for its own accounts.
        run(session, "SELECT set_config('lock_timeout', %(t)s, true)", {"t": BATCH_LOCK_TIMEOUT})
        claims = [t.claim for t in transfers if t.claim is not None]
        ours = idempotency.claim_many(session, claims) if claims else set()
        todo = [
            n for n, t in enumerate(transfers) if t.claim is None or (t.claim.key_id, t.claim.key) in ours
        ]
        movements: list[Movement] = []
        for _ in range(2):
            if not todo:
                break
            try:
                movements = settlement.settle(
                    session, transfers[todo[0]].actor, [transfers[n].line for n in todo]
                )
                break
            except settlement.BatchRefused as refused:
                failing = {todo[e.line - 1] for e in refused.errors}
                idempotency.release_many(
                    session,
                    [(c.key_id, c.key) for n in sorted(failing) if (c := transfers[n].claim) is not None],
                )
                todo = [n for n in todo if n not in failing]
        else:
            raise RuntimeError("a batch of transfers refused twice")  # every transfer goes alone
        stored = []
        for n, movement in zip(todo, movements, strict=True):
            outcomes[n] = answer = render(transfers[n].line, movement)
            claim = transfers[n].claim
            if claim is not None:
                stored.append((claim.key_id, claim.key, CREATED, answer))
        idempotency.store_many(session, stored)
    return outcomes
