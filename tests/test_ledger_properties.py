"""Property tests: random sequences of ledger operations never create or destroy units, never make
overlapping blocks, and always agree with a simple model of who holds how much in which state."""

from __future__ import annotations

import uuid
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import Session

from registry.audit.models import EventKind
from registry.errors import RegistryError
from registry.ledger import pledged
from registry.ledger import service as ledger
from registry.ledger.blocks import normalize_ranges, take_lowest, take_ranges
from registry.ledger.consistency import find_problems
from registry.ledger.service import Selection, SerialRange
from tests import factories as f
from tests.test_blocks import blocks_strategy

PLEDGES = [uuid.UUID(int=i + 1) for i in range(3)]
TYPES = ["CCER", "CDCER"]

op = st.one_of(
    st.tuples(st.just("issue"), st.integers(0, 2), st.sampled_from(TYPES), st.integers(1, 500)),
    st.tuples(
        st.just("transfer"), st.integers(0, 2), st.integers(0, 2), st.sampled_from(TYPES), st.integers(1, 400)
    ),
    st.tuples(
        st.just("transfer_blocks"),
        st.integers(0, 2),
        st.integers(0, 2),
        st.sampled_from(TYPES),
        st.integers(0, 1200),
        st.integers(0, 200),
    ),
    st.tuples(st.just("retire"), st.integers(0, 2), st.sampled_from(TYPES), st.integers(1, 300)),
    st.tuples(
        st.just("hold"),
        st.integers(0, 2),
        st.sampled_from(TYPES),
        st.integers(1, 300),
        st.sampled_from(PLEDGES),
    ),
    st.tuples(
        st.just("release"), st.integers(0, 2), st.sampled_from(PLEDGES), st.none() | st.integers(1, 300)
    ),
    st.tuples(st.just("freeze"), st.integers(0, 2), st.sampled_from(PLEDGES)),
    st.tuples(
        st.just("unfreeze"), st.integers(0, 2), st.sampled_from(PLEDGES), st.none() | st.integers(1, 300)
    ),
    st.tuples(st.just("dispose"), st.integers(0, 2), st.sampled_from(PLEDGES), st.integers(0, 2)),
)


def _state(session: Session, account_ids: list[uuid.UUID]) -> Counter[tuple[int, str, str, str | None]]:
    rows = session.execute(
        text("""
        SELECT h.account_id, ct.code, h.status, h.pledge_id, sum(h.quantity)::bigint AS q
          FROM holding h JOIN credit_type ct ON ct.id = h.credit_type_id
         WHERE h.account_id = ANY(:ids) GROUP BY 1, 2, 3, 4"""),
        {"ids": account_ids},
    )
    return Counter(
        {
            (
                account_ids.index(r.account_id),
                r.code,
                r.status,
                str(r.pledge_id) if r.pledge_id else None,
            ): r.q
            for r in rows
        }
    )


def _touching_blocks(session: Session, account_ids: list[uuid.UUID]) -> list[tuple]:  # type: ignore[type-arg]
    """Blocks of one batch, in one account and state, that touch: a movement must have joined them."""
    return list(
        session.execute(
            text("""
            SELECT a.id, b.id FROM holding a JOIN holding b
              ON b.account_id = a.account_id AND b.batch_id = a.batch_id AND b.status = a.status
             AND b.pledge_id IS NOT DISTINCT FROM a.pledge_id AND b.serial_start = a.serial_end + 1
             WHERE a.account_id = ANY(:ids)"""),
            {"ids": account_ids},
        ).all()
    )


def _run(session: Session, accounts: list[uuid.UUID], operation: tuple) -> None:  # type: ignore[type-arg]
    actor = f.system()
    kind, *args = operation
    if kind == "issue":
        f.issue(session, accounts[args[0]], args[2], credit_type=args[1])
    elif kind == "transfer":
        ledger.transfer(
            session,
            actor,
            from_account_id=accounts[args[0]],
            to_account_id=accounts[args[1]],
            selection=Selection(credit_type=args[2], quantity=args[3]),
        )
    elif kind == "transfer_blocks":
        start = args[3] + 1
        ledger.transfer(
            session,
            actor,
            from_account_id=accounts[args[0]],
            to_account_id=accounts[args[1]],
            selection=Selection(blocks=[SerialRange(args[2], start, start + args[4])]),
        )
    elif kind == "retire":
        ledger.retire(
            session,
            actor,
            account_id=accounts[args[0]],
            selection=Selection(credit_type=args[1], quantity=args[2]),
        )
    elif kind == "hold":
        pledged.hold(
            session,
            actor,
            account_id=accounts[args[0]],
            pledge_id=args[3],
            selection=Selection(credit_type=args[1], quantity=args[2]),
        )
    elif kind in ("release", "unfreeze"):
        move = EventKind.RELEASE_HOLD if kind == "release" else EventKind.UNFREEZE
        sel = Selection() if args[2] is None else Selection(credit_type="CCER", quantity=args[2])
        pledged.move_pledged(
            session, actor, move, account_id=accounts[args[0]], pledge_id=args[1], selection=sel
        )
    elif kind == "freeze":
        pledged.freeze(session, actor, account_id=accounts[args[0]], pledge_id=args[1])
    elif kind == "dispose":
        pledged.dispose(
            session, actor, account_id=accounts[args[0]], pledge_id=args[1], to_account_id=accounts[args[2]]
        )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(op, min_size=1, max_size=25))
def test_random_operations_keep_the_ledger_whole(session: Session, operations: list[tuple]) -> None:  # type: ignore[type-arg]
    example = session.begin_nested()
    try:
        accounts = [f.account(session).id for _ in range(3)]
        for pledge_id in PLEDGES:
            f.bare_pledge(session, accounts[0], pledge_id)
        issued: Counter[str] = Counter()
        for operation in operations:
            before = _state(session, accounts)
            step = session.begin_nested()
            try:
                _run(session, accounts, operation)
                session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))  # deferred checks, now
                session.execute(text("SET CONSTRAINTS ALL DEFERRED"))
                step.commit()
                if operation[0] == "issue":
                    issued[operation[2]] += operation[3]
            except RegistryError:
                step.rollback()
                assert _state(session, accounts) == before, f"a refused {operation} changed the ledger"
            after = _state(session, accounts)
            for code in TYPES:
                # Conservation: every unit issued is somewhere, in some state, retired ones included.
                assert sum(q for (_, c, _, _), q in after.items() if c == code) == issued[code]
            assert all(q > 0 for q in after.values())
            assert _touching_blocks(session, accounts) == [], f"{operation} left a block unjoined"
        assert find_problems(session) == []
    finally:
        example.rollback()


# --- the pure block arithmetic, without a database ------------------------------------------------


@given(blocks=blocks_strategy(), quantity=st.integers(1, 3000))
def test_take_lowest_takes_exactly_the_lowest(blocks, quantity):  # type: ignore[no-untyped-def]
    pieces = take_lowest(blocks, quantity)
    total = sum(b.quantity for b in blocks)
    assert sum(p.quantity for p in pieces) == min(quantity, total)
    taken = [s for p in pieces for s in range(p.start, p.end + 1)]
    held = sorted(s for b in blocks for s in range(b.serial_start, b.serial_end + 1))
    assert taken == held[: len(taken)]


@given(
    blocks=blocks_strategy(),
    ranges=st.lists(st.tuples(st.integers(1, 2000), st.integers(0, 300)), min_size=1, max_size=5),
)
def test_take_ranges_takes_exactly_what_is_held(blocks, ranges):  # type: ignore[no-untyped-def]
    wanted = normalize_ranges([(s, s + n) for s, n in ranges])
    pieces, missing = take_ranges(blocks, wanted)
    held = {s for b in blocks for s in range(b.serial_start, b.serial_end + 1)}
    want = {s for lo, hi in wanted for s in range(lo, hi + 1)}
    assert {s for p in pieces for s in range(p.start, p.end + 1)} == want & held
    assert {s for lo, hi in missing for s in range(lo, hi + 1)} == want - held
