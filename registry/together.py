"""Group commit: requests that arrive while others of their kind are being written wait for them, and are then
written together, in one transaction. A lone request is never delayed: with a lane free it goes at once, on
its own, the way it always did; batches form only from requests that would otherwise queue for the same
locks and the same two cores, so what a write costs the database (its statements' start-up, its triggers,
its commit) is paid once for a batch instead of once for each (docs/architecture.md, "Transfers written
together").

On the event loop, so that a waiting request costs no thread: whoever finds one of the `lanes` free takes
its turn alone, and when a turn ends the waiting tickets (up to `most`, no `key` twice) are written as one
batch in a worker thread, and on its end the next. What a batch gives back for each item is its outcome, or
`ALONE`: that item is then done on its own path, outside the combiner (a line the batch could not take, a
batch that failed). So a batch may do less than it was given, never more, and the path alone stays the one
that decides and words every refusal. A ticket that waits longer than `patience` seconds (the turns ahead
are stuck behind a lock held elsewhere) leaves the queue and goes alone: a slow turn delays the others by a
bounded time."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Final, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Alone:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ALONE"


ALONE: Final = Alone()  # the outcome "do this item on its own"
_TURN: Final = Alone()  # a ticket's outcome "go alone, and the turn is yours" (it was the only one waiting)


class _Ticket(Generic[T, R]):
    __slots__ = ("future", "item")

    def __init__(self, item: T, future: asyncio.Future[R | Alone]) -> None:
        self.item = item
        self.future = future


class Combiner(Generic[T, R]):
    """`run(items)`, called in a worker thread, writes the items together in one transaction and returns one
    outcome per item (ALONE for those it did not do); an exception from it sends every item alone. `key(item)`
    names what two items of one batch may not share (an idempotency key): the second waits for the next.
    `observe(size)` hears of every batch written, `gave_back(n)` of the items each batch sent alone."""

    def __init__(
        self,
        run: Callable[[Sequence[T]], Sequence[R | Alone]],
        *,
        most: int,
        lanes: int = 1,
        patience: float = 0.5,
        key: Callable[[T], object] = lambda item: None,
        observe: Callable[[int], None] = lambda size: None,
        gave_back: Callable[[int], None] = lambda alone: None,
    ) -> None:
        if most < 2 or lanes < 1 or patience <= 0:
            raise ValueError("a batch takes at least two items, a combiner a lane and some patience")
        self._run, self._most, self._key, self._observe, self._gave_back = run, most, key, observe, gave_back
        self._lanes, self._patience = lanes, patience
        self._busy = 0  # turns running: items alone with a lane, and batches
        self._waiting: deque[_Ticket[T, R]] = deque()
        self._batches: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    @property
    def waiting(self) -> int:
        """Tickets waiting for a turn."""
        return len(self._waiting)

    @asynccontextmanager
    async def turn(self, item: T) -> AsyncIterator[R | Alone]:
        """The item's outcome: ALONE (do it on its own path, inside the block) or what a batch made of it.
        Alone with a lane, the requests that arrive meanwhile wait for the block to end."""
        if self._busy < self._lanes:
            self._busy += 1
            outcome: R | Alone = _TURN
        else:
            ticket = _Ticket[T, R](item, asyncio.get_running_loop().create_future())
            self._waiting.append(ticket)
            try:
                try:
                    outcome = await asyncio.wait_for(asyncio.shield(ticket.future), self._patience)
                except TimeoutError:
                    if ticket in self._waiting:
                        self._waiting.remove(ticket)
                        outcome = ALONE  # it goes alone, without a lane, rather than queue behind a slow turn
                    else:
                        outcome = await ticket.future  # a batch has it already
            except asyncio.CancelledError:
                self._leave(ticket)
                raise
        if outcome is _TURN:
            try:
                yield ALONE
            finally:
                self._hand_on()
            return
        yield outcome

    def _leave(self, ticket: _Ticket[T, R]) -> None:
        """A waiting request cancelled (its client gone): out of the queue, or, if the lane was already
        handed to it, the lane handed on — a lane no one holds would be lost for good. In a batch, it is
        written all the same (a retry with its key replays it)."""
        if ticket in self._waiting:
            self._waiting.remove(ticket)
        elif ticket.future.done() and ticket.future.result() is _TURN:
            self._hand_on()

    def _hand_on(self) -> None:
        """A turn ended: its lane passes to the waiting tickets, one batch of them; one waiting goes alone."""
        if not self._waiting:
            self._busy -= 1
            return
        batch: list[_Ticket[T, R]] = []
        later: list[_Ticket[T, R]] = []
        seen: set[object] = set()
        while self._waiting and len(batch) < self._most:
            ticket = self._waiting.popleft()
            k = self._key(ticket.item)
            if k is not None and k in seen:
                later.append(ticket)
            else:
                seen.add(k)
                batch.append(ticket)
        self._waiting.extendleft(reversed(later))
        if len(batch) == 1:
            batch[0].future.set_result(_TURN)
            return
        task = asyncio.get_running_loop().create_task(self._write(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _write(self, batch: list[_Ticket[T, R]]) -> None:
        outcomes: Sequence[R | Alone] = [ALONE] * len(batch)
        work = asyncio.ensure_future(asyncio.to_thread(self._run, [t.item for t in batch]))
        try:
            try:
                done = await asyncio.shield(work)
            except asyncio.CancelledError:
                done = await work  # the thread runs to its end whatever happens: its outcome is the truth
            if len(done) == len(batch):
                outcomes = done
            self._observe(len(batch))
        except Exception as exc:
            # Every item goes alone, where the path that decides refusals answers it; nothing of the batch was
            # committed (`run`'s transaction ended with its exception). Its type only: a database error's
            # text carries the statement's parameters.
            log.warning("a batch of %d failed (%s): each item goes alone", len(batch), type(exc).__name__)
        finally:
            self._hand_on()
            self._gave_back(sum(outcome is ALONE for outcome in outcomes))
            for ticket, outcome in zip(batch, outcomes, strict=True):
                if not ticket.future.done():
                    ticket.future.set_result(outcome)
