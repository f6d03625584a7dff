"""The group-commit protocol (registry/together.py) on its own: who goes alone, who waits, what a batch gets
and gives back. Its use for transfers, against the database: tests/invariants/test_together.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from registry.together import ALONE, Alone, Combiner

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a thread of its own: once a worker has run a browser test, Playwright's sync API (its
    session-scoped browser, tests/browser/conftest.py) keeps its event loop marked running in the main thread
    for the rest of the session, and asyncio.run there refuses to start (seen in CI, order-dependent)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main).result()


class Writer:
    """A `run` that records its batches and, when asked, holds until released (a slow transaction)."""

    def __init__(self, *, fail: bool = False, skip: frozenset[str] = frozenset()) -> None:
        self.batches: list[list[str]] = []
        self.fail, self.skip = fail, skip
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items: Sequence[str]) -> list[str | Alone]:
        self.release.wait(5)
        self.batches.append(list(items))
        if self.fail:
            raise RuntimeError("the batch's transaction failed")
        return [ALONE if item in self.skip else f"done {item}" for item in items]


async def _hold(combiner: Combiner[str, str], item: str, until: asyncio.Event, seen: list[object]) -> None:
    async with combiner.turn(item) as outcome:
        seen.append(outcome)
        await until.wait()


async def _ask(combiner: Combiner[str, str], item: str) -> object:
    async with combiner.turn(item) as outcome:
        return outcome


async def _behind_a_held_turn(
    combiner: Combiner[str, str], items: list[str], *, settle: float = 0.05
) -> tuple[list[object], list[object]]:
    """Items sent while the combiner's one lane is held by another, then the lane released."""
    until, held = asyncio.Event(), list[object]()
    holder = asyncio.create_task(_hold(combiner, "first", until, held))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(_ask(combiner, item)) for item in items]
    await asyncio.sleep(settle)
    until.set()
    await holder
    return held, list(await asyncio.gather(*waiting))


def test_a_lone_item_goes_alone_at_once() -> None:
    writer = Writer()
    combiner = Combiner(writer, most=8, lanes=1)
    assert run(_ask(combiner, "a")) is ALONE
    assert writer.batches == []


def test_items_that_wait_for_a_turn_are_written_together_in_one_batch() -> None:
    writer = Writer()
    sizes: list[int] = []
    combiner = Combiner(writer, most=8, lanes=1, observe=sizes.append)
    held, outcomes = run(_behind_a_held_turn(combiner, ["a", "b", "c"]))
    assert held == [ALONE]  # the first went alone, holding the lane
    assert writer.batches == [["a", "b", "c"]]
    assert outcomes == ["done a", "done b", "done c"] and sizes == [3]


def test_a_batch_takes_at_most_its_size_and_the_rest_follow() -> None:
    writer = Writer()
    combiner = Combiner(writer, most=2, lanes=1)
    _, outcomes = run(_behind_a_held_turn(combiner, ["a", "b", "c", "d", "e"]))
    assert writer.batches == [["a", "b"], ["c", "d"]]  # and "e", alone with the lane after them
    assert outcomes == ["done a", "done b", "done c", "done d", ALONE]


def test_a_failed_batch_sends_every_item_alone() -> None:
    sizes: list[int] = []
    given_back: list[int] = []
    combiner = Combiner(Writer(fail=True), most=8, lanes=1, observe=sizes.append, gave_back=given_back.append)
    _, outcomes = run(_behind_a_held_turn(combiner, ["a", "b"]))
    assert outcomes == [ALONE, ALONE]
    assert sizes == [] and given_back == [2]  # no batch written; both given back


def test_what_a_batch_did_not_do_goes_alone() -> None:
    given_back: list[int] = []
    combiner = Combiner(Writer(skip=frozenset({"b"})), most=8, lanes=1, gave_back=given_back.append)
    _, outcomes = run(_behind_a_held_turn(combiner, ["a", "b", "c"]))
    assert outcomes == ["done a", ALONE, "done c"] and given_back == [1]


def test_two_items_with_one_key_are_never_in_one_batch() -> None:
    writer = Writer()
    combiner = Combiner(writer, most=8, lanes=1, key=lambda item: item[0])
    _, outcomes = run(_behind_a_held_turn(combiner, ["k1", "j1", "k2", "i1"]))
    assert writer.batches[0] == ["k1", "j1", "i1"]
    assert "k2" not in writer.batches[0] and outcomes[2] in ("done k2", ALONE)


def test_lanes_let_that_many_items_go_alone_at_once() -> None:
    async def scenario() -> list[object]:
        combiner = Combiner(Writer(), most=8, lanes=2)
        until, held = asyncio.Event(), list[object]()
        holders = [asyncio.create_task(_hold(combiner, f"h{n}", until, held)) for n in range(2)]
        await asyncio.sleep(0.01)
        third = asyncio.create_task(_ask(combiner, "third"))
        await asyncio.sleep(0.01)
        assert not third.done()  # both lanes taken: it waits
        until.set()
        await asyncio.gather(*holders)
        return [*held, await third]

    assert run(scenario()) == [ALONE, ALONE, ALONE]


def test_an_item_stuck_behind_a_slow_turn_goes_alone_after_its_patience() -> None:
    async def scenario() -> object:
        combiner = Combiner(Writer(), most=8, lanes=1, patience=0.05)
        until, held = asyncio.Event(), list[object]()
        holder = asyncio.create_task(_hold(combiner, "slow", until, held))
        await asyncio.sleep(0)
        outcome = await asyncio.wait_for(_ask(combiner, "patient"), 2)  # answered while the turn is held
        until.set()
        await holder
        return outcome

    assert run(scenario()) is ALONE


def test_a_batch_already_being_written_is_waited_for_past_the_patience() -> None:
    async def scenario() -> list[object]:
        writer = Writer()
        writer.release.clear()  # the batch's transaction takes longer than the patience
        combiner = Combiner(writer, most=8, lanes=1, patience=0.05)
        until, held = asyncio.Event(), list[object]()
        holder = asyncio.create_task(_hold(combiner, "first", until, held))
        await asyncio.sleep(0)
        waiting = [asyncio.create_task(_ask(combiner, item)) for item in ("a", "b")]
        await asyncio.sleep(0.01)
        until.set()
        await holder
        await asyncio.sleep(0.1)
        writer.release.set()
        return list(await asyncio.gather(*waiting))

    assert run(scenario()) == ["done a", "done b"]  # written once, not also alone


def test_a_waiting_request_cancelled_leaves_no_lane_taken() -> None:
    """Its client gone, a waiting request is cancelled: whether still queued or handed the lane in the same
    moment, the lane is free again for the next (which would otherwise wait its whole patience, and every one
    after it)."""

    async def scenario(in_the_moment_of_hand_on: bool) -> object:
        combiner = Combiner(Writer(), most=8, lanes=1, patience=30)
        until = asyncio.Event()
        gone: asyncio.Task[object] | None = None

        async def hold() -> None:
            async with combiner.turn("first"):
                await until.wait()
            if in_the_moment_of_hand_on:
                assert gone is not None
                gone.cancel()  # the lane was just handed to it; it has not run since

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        gone = asyncio.create_task(_ask(combiner, "gone"))
        await asyncio.sleep(0.01)
        if not in_the_moment_of_hand_on:
            gone.cancel()
            await asyncio.sleep(0)
        until.set()
        await holder
        await asyncio.gather(gone, return_exceptions=True)
        return await asyncio.wait_for(_ask(combiner, "next"), 2)  # at once: the lane is free

    assert run(scenario(False)) is ALONE
    assert run(scenario(True)) is ALONE


def test_a_combiner_needs_room_for_two() -> None:
    with pytest.raises(ValueError):
        Combiner(Writer(), most=1)
