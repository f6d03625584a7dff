"""Hypothesis strategies for blocks, and examples of the block arithmetic that read as documentation."""

from __future__ import annotations

import uuid

from hypothesis import strategies as st

from registry.ledger.blocks import Block, normalize_ranges, take_lowest

BATCH = uuid.UUID(int=7)
ACCOUNT = uuid.UUID(int=8)


@st.composite
def blocks_strategy(draw):  # type: ignore[no-untyped-def]
    """Sorted, non-overlapping blocks with gaps between some of them."""
    out = []
    cursor = draw(st.integers(1, 50))
    for i in range(draw(st.integers(0, 8))):
        cursor += draw(st.integers(0, 40))
        length = draw(st.integers(1, 200))
        out.append(Block(i + 1, 1, BATCH, cursor, cursor + length - 1, ACCOUNT, "available", None))
        cursor += length
    return out


def block(i: int, start: int, end: int) -> Block:
    return Block(i, 1, BATCH, start, end, ACCOUNT, "available", None)


def test_take_lowest_splits_the_last_block() -> None:
    pieces = take_lowest([block(1, 1, 10), block(2, 21, 30)], 15)
    assert [(p.block.id, p.start, p.end, p.whole) for p in pieces] == [(1, 1, 10, True), (2, 21, 25, False)]


def test_normalize_joins_touching_ranges() -> None:
    assert normalize_ranges([(5, 9), (1, 4), (20, 30), (25, 26)]) == [(1, 9), (20, 30)]
