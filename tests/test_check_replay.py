"""The replay check of `registry check` ("the blocks differ from a replay of the audit trail"), tried hard:
blocks and events written straight into the tables (triggers off, as an intruder or a bug would), and the
check's answer compared, piece by piece, with a replay done here in Python and with the check as it was
before it was set-based (two index probes a piece), kept below as the reference."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

import pytest
from sqlalchemy import Connection, Engine, text

from registry.ledger.consistency import CHECKS

TITLE = "the blocks differ from a replay of the audit trail"

# The check as it was before it was set-based (stop 20): each piece between block and event boundaries
# looked up through the GiST indexes. Slow, but plainly right: the oracle for the set-based query.
REFERENCE = """
    WITH cut AS (
        SELECT credit_type_id AS ct, serial_start AS at FROM holding
        UNION SELECT credit_type_id, serial_end + 1 FROM holding
        UNION SELECT credit_type_id, serial_start FROM audit_event
        UNION SELECT credit_type_id, serial_end + 1 FROM audit_event
    ), piece AS (
        SELECT ct, at AS lo, lead(at) OVER (PARTITION BY ct ORDER BY at) - 1 AS hi FROM cut
    )
    SELECT 'credit type ' || p.ct || ' serials ' || p.lo || '-' || p.hi || ': block says '
           || coalesce(h.account_id::text || ' ' || h.status || coalesce(' ' || h.pledge_id, ''), 'nothing')
           || ', the trail says '
           || coalesce(e.to_account_id::text || ' ' || e.to_status || coalesce(' ' || e.to_pledge_id, ''),
                       'nothing') || coalesce(' (event ' || e.id || ')', '')
      FROM piece p
      LEFT JOIN LATERAL (
          SELECT account_id, status, pledge_id FROM holding
           WHERE registry_box(credit_type_id, serial_start, serial_end) && registry_box(p.ct, p.lo, p.lo)) h ON true
      LEFT JOIN LATERAL (
          SELECT id, to_account_id, to_status, to_pledge_id FROM audit_event
           WHERE registry_box(credit_type_id, serial_start, serial_end) && registry_box(p.ct, p.lo, p.lo)
           ORDER BY id + 0 DESC LIMIT 1) e ON true
     WHERE p.hi IS NOT NULL
       AND (h.account_id, h.status, h.pledge_id) IS DISTINCT FROM (e.to_account_id, e.to_status, e.to_pledge_id)"""

BATCH = uuid.UUID(int=0xBA7C)
A, B, C = (uuid.UUID(int=0xA0 + n) for n in range(3))
PLEDGE = uuid.UUID(int=0x9E)

State = tuple[uuid.UUID, str, uuid.UUID | None]
AVAILABLE_A: State = (A, "available", None)
AVAILABLE_B: State = (B, "available", None)
HELD_C: State = (C, "held", PLEDGE)


@dataclass(frozen=True)
class Span:
    ct: int
    start: int
    end: int
    state: State


class Ledger:
    """Blocks and events written as they are given (event ids in the order of `event` calls), and what
    the check says of them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.blocks: list[Span] = []
        self.events: list[tuple[int, Span]] = []

    def block(self, ct: int, start: int, end: int, state: State = AVAILABLE_A) -> None:
        self.conn.execute(
            text(
                "INSERT INTO holding (credit_type_id, batch_id, serial_start, serial_end, account_id, status,"
                " pledge_id) VALUES (:ct, :batch, :s, :e, :a, :st, :p)"
            ),
            {"ct": ct, "batch": BATCH, "s": start, "e": end, "a": state[0], "st": state[1], "p": state[2]},
        )
        self.blocks.append(Span(ct, start, end, state))

    def event(self, ct: int, start: int, end: int, state: State = AVAILABLE_A) -> int:
        event_id: int = self.conn.execute(
            text(
                "INSERT INTO audit_event (account_id, seq, kind, credit_type_id, batch_id, serial_start,"
                " serial_end, to_account_id, to_status, to_pledge_id, actor_role, occurred_at, prev_hash, hash)"
                " VALUES (:chain, 1, 'transfer', :ct, :batch, :s, :e, :a, :st, :p, 'system', now(),"
                " :prev, :hash) RETURNING id"
            ),
            {"chain": uuid.uuid4(), "ct": ct, "batch": BATCH, "s": start, "e": end, "a": state[0],
             "st": state[1], "p": state[2], "prev": bytes(32), "hash": uuid.uuid4().bytes * 2},
        ).scalar_one()  # fmt: skip
        self.events.append((event_id, Span(ct, start, end, state)))
        return event_id

    def check(self, sql: str = CHECKS[TITLE]) -> list[str]:
        return sorted(self.conn.execute(text(sql)).scalars())

    def replayed(self, *, latest: bool = True) -> list[str]:
        """The replay done here: each piece between boundaries, its block and the latest event over it."""
        found: list[str] = []
        for ct in sorted({s.ct for s in self.blocks} | {s.ct for _, s in self.events}):
            blocks = [s for s in self.blocks if s.ct == ct]
            events = [(i, s) for i, s in self.events if s.ct == ct]
            cuts = sorted({x for s in blocks + [s for _, s in events] for x in (s.start, s.end + 1)})
            for lo, after in pairwise(cuts):
                block = next((s.state for s in blocks if s.start <= lo <= s.end), None)
                over = [(i, s.state) for i, s in events if s.start <= lo <= s.end]
                event = (max if latest else min)(over, default=None)
                if block != (event[1] if event else None):
                    found.append(
                        f"credit type {ct} serials {lo}-{after - 1}: block says {_said(block)}, the trail says "
                        f"{_said(event[1] if event else None)}{f' (event {event[0]})' if event else ''}"
                    )
        return sorted(found)


def _said(state: State | None) -> str:
    if state is None:
        return "nothing"
    return f"{state[0]} {state[1]}" + (f" {state[2]}" if state[2] else "")


@pytest.fixture
def ledger(engine: Engine) -> Iterator[Ledger]:
    """An empty ledger of its own (everything else in the test database hidden by deleting it in this
    transaction), triggers off; rolled back afterwards."""
    with engine.connect() as conn, conn.begin() as outer:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("DELETE FROM holding"))
        conn.execute(text("DELETE FROM audit_event"))
        try:
            yield Ledger(conn)
        finally:
            outer.rollback()


def _agrees(ledger: Ledger) -> list[str]:
    """What the check says, after asserting that the replay here and the reference query say the same."""
    found = ledger.check()
    assert found == ledger.replayed()
    assert found == ledger.check(REFERENCE)
    return found


def test_a_faithful_trail_replays_to_the_blocks(ledger: Ledger) -> None:
    ledger.block(1, 1, 100, AVAILABLE_B)
    ledger.block(1, 101, 250, HELD_C)
    ledger.block(2, 1, 10, AVAILABLE_A)
    ledger.event(1, 1, 250, AVAILABLE_A)  # issued as one block
    ledger.event(2, 1, 10, AVAILABLE_A)
    ledger.event(1, 1, 100, AVAILABLE_B)  # then split by two moves
    ledger.event(1, 101, 250, HELD_C)
    assert _agrees(ledger) == []


def test_the_latest_event_wins_not_the_earliest(ledger: Ledger) -> None:
    ledger.block(1, 1, 100, AVAILABLE_B)
    ledger.event(1, 1, 100, AVAILABLE_A)
    ledger.event(1, 1, 100, AVAILABLE_B)
    assert _agrees(ledger) == []
    # ... and the other way round: the block as the first event left it is what differs
    ledger.block(2, 1, 100, AVAILABLE_A)
    ledger.event(2, 1, 100, AVAILABLE_A)
    last = ledger.event(2, 1, 100, AVAILABLE_B)
    assert _agrees(ledger) == [
        f"credit type 2 serials 1-100: block says {A} available, the trail says {B} available (event {last})"
    ]


def test_an_event_over_part_of_a_block(ledger: Ledger) -> None:
    ledger.block(1, 1, 100, AVAILABLE_A)
    ledger.event(1, 1, 100, AVAILABLE_A)
    moved = ledger.event(1, 41, 60, HELD_C)  # the middle moved in the trail, not in the blocks
    assert _agrees(ledger) == [
        f"credit type 1 serials 41-60: block says {A} available, the trail says {C} held {PLEDGE} (event {moved})"
    ]


def test_a_later_event_that_starts_lower_and_overlaps(ledger: Ledger) -> None:
    ledger.block(1, 1, 30, AVAILABLE_B)
    ledger.block(1, 31, 100, AVAILABLE_A)
    ledger.event(1, 20, 100, AVAILABLE_A)
    ledger.event(1, 1, 30, AVAILABLE_B)  # later, lower start, overlapping the first one's 20-30
    assert _agrees(ledger) == []
    ledger.event(1, 10, 40, HELD_C)
    assert len(_agrees(ledger)) == 3  # 10-19, 20-30 and 31-40 each differ


def test_nested_events_either_way_round(ledger: Ledger) -> None:
    ledger.block(1, 1, 100, AVAILABLE_A)
    ledger.event(1, 1, 100, AVAILABLE_B)
    inner = ledger.event(1, 30, 40, AVAILABLE_A)  # the later one inside the earlier
    ledger.block(2, 1, 100, AVAILABLE_A)
    ledger.event(2, 30, 40, AVAILABLE_B)
    outer = ledger.event(2, 1, 100, AVAILABLE_A)  # the later one around the earlier
    found = _agrees(ledger)
    assert found == sorted(
        [
            f"credit type 1 serials 1-29: block says {A} available, the trail says {B} available (event {inner - 1})",
            f"credit type 1 serials 41-100: block says {A} available, the trail says {B} available (event {inner - 1})",
        ]
    )
    assert not [p for p in found if f"(event {outer})" in p or "credit type 2" in p]


def test_a_block_with_no_event_and_an_event_with_no_block(ledger: Ledger) -> None:
    ledger.block(1, 1, 50, AVAILABLE_A)
    ledger.block(1, 51, 60, AVAILABLE_B)  # adjacent to the first, no event ever named it
    ledger.event(1, 1, 50, AVAILABLE_A)
    orphan = ledger.event(1, 200, 300, AVAILABLE_A)  # its units are in no block now
    assert _agrees(ledger) == sorted(
        [
            f"credit type 1 serials 51-60: block says {B} available, the trail says nothing",
            f"credit type 1 serials 200-300: block says nothing, the trail says {A} available (event {orphan})",
        ]
    )


def test_adjacent_pieces_are_named_each(ledger: Ledger) -> None:
    for n in range(5):
        ledger.block(1, n * 10 + 1, n * 10 + 10, AVAILABLE_A)
        ledger.event(1, n * 10 + 1, n * 10 + 10, AVAILABLE_A if n % 2 else AVAILABLE_B)
    assert len(_agrees(ledger)) == 3


def test_credit_types_do_not_mix(ledger: Ledger) -> None:
    """The same serials in two credit types: each is replayed from its own events."""
    ledger.block(1, 1, 100, AVAILABLE_A)
    ledger.block(2, 1, 100, AVAILABLE_B)
    ledger.event(1, 1, 100, AVAILABLE_A)
    ledger.event(2, 1, 100, AVAILABLE_B)
    assert _agrees(ledger) == []
    ledger.event(3, 1, 100, AVAILABLE_B)
    assert _agrees(ledger) == [
        f"credit type 3 serials 1-100: block says nothing, the trail says {B} available "
        f"(event {ledger.events[-1][0]})"
    ]


def test_a_pledge_or_status_alone_differing_is_caught(ledger: Ledger) -> None:
    ledger.block(1, 1, 10, (C, "frozen", PLEDGE))
    ledger.event(1, 1, 10, (C, "held", PLEDGE))
    ledger.block(1, 11, 20, (C, "held", uuid.UUID(int=1)))
    ledger.event(1, 11, 20, HELD_C)
    assert len(_agrees(ledger)) == 2


def test_taking_the_earliest_event_is_a_different_answer(ledger: Ledger) -> None:
    """The query picks the latest event over a piece by its `ORDER BY ..., id DESC`; the mutation that
    picks the earliest gives another answer on the same ledger (so the tests here would catch it)."""
    assert CHECKS[TITLE].count("id DESC") == 1
    ledger.block(1, 1, 100, AVAILABLE_B)
    ledger.event(1, 1, 100, AVAILABLE_A)
    ledger.event(1, 1, 60, AVAILABLE_B)
    ledger.event(1, 61, 100, AVAILABLE_B)
    assert _agrees(ledger) == []
    earliest = CHECKS[TITLE].replace("id DESC", "id")
    assert ledger.check(earliest) == ledger.replayed(latest=False) != []


@pytest.mark.parametrize("seed", range(12))
def test_random_ledgers_replay_as_here(ledger: Ledger, seed: int) -> None:
    """Random blocks (tiling, with gaps) and random overlapping, nesting events written in a random order,
    over three credit types."""
    rnd = random.Random(seed)
    states = [AVAILABLE_A, AVAILABLE_B, HELD_C, (A, "frozen", PLEDGE), (B, "retired", None)]
    events: list[Span] = []
    for ct in (1, 2, 5):
        at = 1
        for _ in range(rnd.randint(1, 25)):
            at += rnd.choice((0, 0, 0, 3))  # sometimes a gap
            end = at + rnd.randint(0, 20)
            state = rnd.choice(states)
            ledger.block(ct, at, end, state)
            if rnd.random() < 0.9:
                events.append(Span(ct, at, end, state))  # the event that left the block so
            at = end + 1
        for _ in range(rnd.randint(0, 15)):
            lo = rnd.randint(1, at + 5)
            events.append(Span(ct, lo, lo + rnd.randint(0, 40), rnd.choice(states)))
    # mostly in the order made (faithful events last over their blocks), some moved anywhere
    for _ in range(len(events) // 4):
        events.insert(rnd.randrange(len(events) + 1), events.pop(rnd.randrange(len(events))))
    for e in events:
        ledger.event(e.ct, e.start, e.end, e.state)
    _agrees(ledger)
