"""The ledger's operations through the service, and the invariants the database enforces by itself."""

from __future__ import annotations

import random
import uuid
from typing import ClassVar

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from registry.audit.models import EventKind
from registry.errors import Forbidden, InvalidInput, NotFound
from registry.ledger import pledged
from registry.ledger import service as ledger
from registry.ledger.errors import BlocksNotAvailable, InsufficientUnits
from registry.ledger.models import SERIAL_MAX
from registry.ledger.service import Selection, SerialRange
from registry.principal import Actor, Principal, Role
from tests import factories as f


def blocks(session: Session, account_id: uuid.UUID, credit_type: str = "CCER") -> list[tuple[int, int, str]]:
    rows = session.execute(
        text(
            "SELECT serial_start, serial_end, status FROM holding h "
            "JOIN credit_type ct ON ct.id = h.credit_type_id "
            "WHERE account_id = :a AND ct.code = :ct ORDER BY serial_start"
        ),
        {"a": account_id, "ct": credit_type},
    )
    return [tuple(r) for r in rows]


def ccer(quantity: int) -> Selection:
    return Selection(credit_type="CCER", quantity=quantity)


def serials(*ranges: tuple[int, int], credit_type: str = "CCER") -> Selection:
    return Selection(blocks=[SerialRange(credit_type, s, e) for s, e in ranges])


class TestIssue:
    def test_serials_are_contiguous_and_unique_per_credit_type(self, session: Session) -> None:
        a = f.account(session)
        first = f.issue(session, a.id, 1000)
        second = f.issue(session, a.id, 500)
        other_type = f.issue(session, a.id, 10, credit_type="CDCER")
        assert second.serial_start == first.serial_end + 1
        assert second.serial_end - second.serial_start + 1 == 500
        assert other_type.serial_start >= 1  # its own serial space
        # Two batches are two blocks: blocks never merge across batches.
        assert [b[:2] for b in blocks(session, a.id)] == [
            (first.serial_start, first.serial_end),
            (second.serial_start, second.serial_end),
        ]
        assert blocks(session, a.id, "CDCER") == [
            (other_type.serial_start, other_type.serial_end, "available")
        ]

    def test_only_the_exchange_issues(self, session: Session) -> None:
        a = f.account(session)
        bank = Actor(Principal(party_id=uuid.uuid4(), role=Role.BANK), f.AT)
        with pytest.raises(Forbidden):
            ledger.issue(
                session,
                bank,
                credit_type="CCER",
                project_code="X",
                project_type="x",
                vintage=2024,
                quantity=1,
                account_id=a.id,
            )

    def test_unknown_credit_type_and_account(self, session: Session) -> None:
        a = f.account(session)
        with pytest.raises(NotFound):
            ledger.issue(
                session,
                f.system(),
                credit_type="NOPE",
                project_code="X",
                project_type="x",
                vintage=2024,
                quantity=1,
                account_id=a.id,
            )
        with pytest.raises(NotFound):
            ledger.issue(
                session,
                f.system(),
                credit_type="CCER",
                project_code="X",
                project_type="x",
                vintage=2024,
                quantity=1,
                account_id=uuid.uuid4(),
            )


class TestTransfer:
    def test_by_quantity_takes_the_lowest_serials_and_splits(self, session: Session) -> None:
        a, b = f.account(session), f.account(session)
        batch = f.issue(session, a.id, 1000)
        s = batch.serial_start
        moved = ledger.transfer(
            session, f.system(), from_account_id=a.id, to_account_id=b.id, selection=ccer(300)
        )
        assert [(m.serial_start, m.serial_end) for m in moved.blocks] == [(s, s + 299)]
        assert blocks(session, a.id) == [(s + 300, s + 999, "available")]
        assert blocks(session, b.id) == [(s, s + 299, "available")]

    def test_adjacent_blocks_merge_at_the_destination(self, session: Session) -> None:
        a, b = f.account(session), f.account(session)
        s = f.issue(session, a.id, 1000).serial_start
        for _ in range(4):
            ledger.transfer(
                session, f.system(), from_account_id=a.id, to_account_id=b.id, selection=ccer(100)
            )
        assert blocks(session, b.id) == [(s, s + 399, "available")]
        ledger.transfer(
            session,
            f.system(),
            from_account_id=b.id,
            to_account_id=a.id,
            selection=serials((s + 100, s + 199)),
        )
        assert blocks(session, b.id) == [(s, s + 99, "available"), (s + 200, s + 399, "available")]
        ledger.transfer(
            session,
            f.system(),
            from_account_id=a.id,
            to_account_id=b.id,
            selection=serials((s + 100, s + 199)),
        )
        assert blocks(session, b.id) == [(s, s + 399, "available")]

    def test_by_named_blocks_across_several_blocks(self, session: Session) -> None:
        a, b = f.account(session), f.account(session)
        s = f.issue(session, a.id, 100).serial_start
        moved = ledger.transfer(
            session,
            f.system(),
            from_account_id=a.id,
            to_account_id=b.id,
            selection=serials((s + 10, s + 19), (s + 40, s + 49)),
        )
        assert moved.quantity == 20
        assert blocks(session, a.id) == [
            (s, s + 9, "available"),
            (s + 20, s + 39, "available"),
            (s + 50, s + 99, "available"),
        ]

    def test_not_enough_units_changes_nothing(self, session: Session) -> None:
        a, b = f.account(session), f.account(session)
        s = f.issue(session, a.id, 100).serial_start
        with pytest.raises(InsufficientUnits) as err:
            ledger.transfer(
                session, f.system(), from_account_id=a.id, to_account_id=b.id, selection=ccer(101)
            )
        assert err.value.context["available"] == 100
        with pytest.raises(BlocksNotAvailable) as err2:
            ledger.transfer(
                session,
                f.system(),
                from_account_id=a.id,
                to_account_id=b.id,
                selection=serials((s + 90, s + 110)),
            )
        assert err2.value.context["missing"] == [{"serial_start": s + 100, "serial_end": s + 110}]
        assert blocks(session, a.id) == [(s, s + 99, "available")]

    def test_overlapping_named_blocks_are_refused(self, session: Session) -> None:
        a, b = f.account(session), f.account(session)
        s = f.issue(session, a.id, 100).serial_start
        with pytest.raises(InvalidInput):
            ledger.transfer(
                session,
                f.system(),
                from_account_id=a.id,
                to_account_id=b.id,
                selection=serials((s, s + 10), (s + 5, s + 20)),
            )

    def test_to_itself_is_refused(self, session: Session) -> None:
        a = f.account(session)
        f.issue(session, a.id, 10)
        with pytest.raises(InvalidInput):
            ledger.transfer(session, f.system(), from_account_id=a.id, to_account_id=a.id, selection=ccer(1))


class TestPledgePrimitives:
    def test_hold_freeze_unfreeze_round_trip(self, session: Session) -> None:
        a = f.account(session)
        s = f.issue(session, a.id, 1000).serial_start
        pledge = f.bare_pledge(session, a.id)
        pledged.hold(session, f.system(), account_id=a.id, pledge_id=pledge, selection=ccer(400))
        assert blocks(session, a.id) == [(s, s + 399, "held"), (s + 400, s + 999, "available")]
        pledged.freeze(session, f.system(), account_id=a.id, pledge_id=pledge)
        assert blocks(session, a.id)[0] == (s, s + 399, "frozen")
        pledged.move_pledged(
            session, f.system(), EventKind.UNFREEZE, account_id=a.id, pledge_id=pledge, selection=ccer(100)
        )
        assert blocks(session, a.id) == [
            (s, s + 99, "available"),
            (s + 100, s + 399, "frozen"),
            (s + 400, s + 999, "available"),
        ]
        pledged.move_pledged(session, f.system(), EventKind.UNFREEZE, account_id=a.id, pledge_id=pledge)
        assert blocks(session, a.id) == [(s, s + 999, "available")]

    def test_held_and_frozen_units_cannot_be_transferred_or_retired(self, session: Session) -> None:
        a, b = f.account(session), f.account(session)
        f.issue(session, a.id, 100)
        pledge = f.bare_pledge(session, a.id)
        pledged.hold(session, f.system(), account_id=a.id, pledge_id=pledge, selection=ccer(60))
        with pytest.raises(InsufficientUnits):
            ledger.transfer(session, f.system(), from_account_id=a.id, to_account_id=b.id, selection=ccer(41))
        pledged.freeze(session, f.system(), account_id=a.id, pledge_id=pledge)
        with pytest.raises(InsufficientUnits):
            ledger.retire(session, f.system(), account_id=a.id, selection=ccer(41))
        with pytest.raises(InsufficientUnits):
            pledged.hold(
                session,
                f.system(),
                account_id=a.id,
                pledge_id=f.bare_pledge(session, a.id),
                selection=ccer(41),
            )

    def test_release_of_more_than_is_pledged_is_refused(self, session: Session) -> None:
        a = f.account(session)
        f.issue(session, a.id, 100)
        pledge = f.bare_pledge(session, a.id)
        pledged.hold(session, f.system(), account_id=a.id, pledge_id=pledge, selection=ccer(50))
        with pytest.raises(InsufficientUnits):
            pledged.move_pledged(
                session,
                f.system(),
                EventKind.RELEASE_HOLD,
                account_id=a.id,
                pledge_id=pledge,
                selection=ccer(51),
            )

    def test_dispose_moves_frozen_units_to_the_lender(self, session: Session) -> None:
        a, bank = f.account(session), f.account(session)
        s = f.issue(session, a.id, 100).serial_start
        pledge = f.bare_pledge(session, a.id)
        pledged.hold(session, f.system(), account_id=a.id, pledge_id=pledge, selection=ccer(70))
        pledged.freeze(session, f.system(), account_id=a.id, pledge_id=pledge)
        moved = pledged.dispose(session, f.system(), account_id=a.id, pledge_id=pledge, to_account_id=bank.id)
        assert moved.quantity == 70
        assert blocks(session, bank.id) == [(s, s + 69, "available")]
        assert blocks(session, a.id) == [(s + 70, s + 99, "available")]


class TestDatabaseRefuses:
    """What the database refuses even if the service were bypassed (raw SQL as the application)."""

    def _setup(self, session: Session) -> tuple[uuid.UUID, uuid.UUID, int]:
        a, b = f.account(session), f.account(session)
        s = f.issue(session, a.id, 100).serial_start
        # Run the issuance's own deferred checks now, so that each test sees only the check it provokes.
        session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        session.execute(text("SET CONSTRAINTS ALL DEFERRED"))
        return a.id, b.id, s

    def test_overlapping_blocks(self, session: Session) -> None:
        a, _, s = self._setup(session)
        batch = session.execute(
            text("SELECT batch_id FROM holding WHERE account_id = :a"), {"a": a}
        ).scalar_one()
        with pytest.raises(IntegrityError, match="ex_holding_no_overlap"), session.begin_nested():
            session.execute(
                text(
                    "INSERT INTO holding (credit_type_id, batch_id, serial_start, serial_end, "
                    "account_id, status) VALUES (1, :b, :s, :s, :a, 'available')"
                ),
                {"b": batch, "s": s + 5, "a": a},
            )
            session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))  # what COMMIT does

    def test_held_block_without_pledge(self, session: Session) -> None:
        a, _, _ = self._setup(session)
        with pytest.raises(IntegrityError, match="ck_holding_pledge_named"), session.begin_nested():
            session.execute(text("UPDATE holding SET status = 'held' WHERE account_id = :a"), {"a": a})

    def test_transfer_of_frozen_units(self, session: Session) -> None:
        a, b, _ = self._setup(session)
        pledged.hold(
            session, f.system(), account_id=a, pledge_id=f.bare_pledge(session, a), selection=ccer(100)
        )
        with pytest.raises(IntegrityError, match="not a ledger transition"), session.begin_nested():
            session.execute(
                text("UPDATE holding SET account_id = :b WHERE account_id = :a"), {"a": a, "b": b}
            )

    def test_retiring_pledged_units(self, session: Session) -> None:
        a, _, _ = self._setup(session)
        pledge = f.bare_pledge(session, a)
        pledged.hold(session, f.system(), account_id=a, pledge_id=pledge, selection=ccer(100))
        pledged.freeze(session, f.system(), account_id=a, pledge_id=pledge)
        with pytest.raises(IntegrityError, match="not a ledger transition"), session.begin_nested():
            session.execute(
                text("UPDATE holding SET status = 'retired', pledge_id = NULL WHERE account_id = :a"),
                {"a": a},
            )

    def test_destroying_units_is_caught_at_commit(self, session: Session) -> None:
        a, _, _ = self._setup(session)
        with pytest.raises(IntegrityError, match="would be destroyed"), session.begin_nested():
            session.execute(
                text("UPDATE holding SET serial_end = serial_end - 1 WHERE account_id = :a"), {"a": a}
            )
            session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))

    def test_destroying_units_among_many_in_one_statement(self, session: Session) -> None:
        """The check is one query over the whole statement's blocks: one unit short among many is named."""
        a, b, _ = self._setup(session)
        for _ in range(3):
            f.issue(session, a, 100)
        session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        session.execute(text("SET CONSTRAINTS ALL DEFERRED"))
        last = session.execute(
            text("SELECT max(id) FROM holding WHERE account_id = :a"), {"a": a}
        ).scalar_one()
        with pytest.raises(IntegrityError, match="would be destroyed") as refused, session.begin_nested():
            # every block moves to b; the last one also loses its last unit
            session.execute(
                text(
                    "UPDATE holding SET account_id = :b, "
                    "serial_end = serial_end - CASE WHEN id = :last THEN 1 ELSE 0 END WHERE account_id = :a"
                ),
                {"a": a, "b": b, "last": last},
            )
            session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        assert refused.value.orig.diag.constraint_name == "holding_conserved"  # type: ignore[union-attr]
        end = session.execute(text("SELECT serial_end FROM holding WHERE id = :i"), {"i": last}).scalar_one()
        assert f"to {end} of credit type 1 would be destroyed (99 of 100 still held)" in str(refused.value)

    def test_a_block_rewritten_whole_over_two_statements_is_conserved(self, session: Session) -> None:
        """Deleted in one statement, written again (in two pieces) in the next: checked at commit, passes;
        and nothing is left pending."""
        a, _, s = self._setup(session)
        batch = session.execute(
            text("SELECT batch_id FROM holding WHERE account_id = :a"), {"a": a}
        ).scalar_one()
        session.execute(text("DELETE FROM holding WHERE account_id = :a"), {"a": a})
        session.execute(
            text(
                "INSERT INTO holding (credit_type_id, batch_id, serial_start, serial_end, account_id, status) "
                "VALUES (1, :batch, :s, :s + 59, :a, 'available'), (1, :batch, :s + 60, :s + 99, :a, 'available')"
            ),
            {"batch": batch, "s": s, "a": a},
        )
        session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        assert blocks(session, a) == [(s, s + 59, "available"), (s + 60, s + 99, "available")]
        assert session.execute(text("SELECT count(*) FROM holding_pending_check")).scalar_one() == 0

    def test_creating_units_outside_a_batch(self, session: Session) -> None:
        a, _, s = self._setup(session)
        batch = session.execute(
            text("SELECT batch_id FROM holding WHERE account_id = :a"), {"a": a}
        ).scalar_one()
        with pytest.raises(IntegrityError, match="outside its batch"), session.begin_nested():
            session.execute(
                text("UPDATE holding SET serial_end = serial_end + 1 WHERE account_id = :a"), {"a": a}
            )
            session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        assert batch is not None and s > 0

    def test_history_cannot_be_changed_or_removed(self, session: Session) -> None:
        self._setup(session)
        for sql in ("UPDATE audit_event SET reason = 'x'", "DELETE FROM audit_event", "TRUNCATE audit_event"):
            with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
                session.execute(text(sql))

    def test_issuance_batches_are_immutable(self, session: Session) -> None:
        self._setup(session)
        with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
            session.execute(text("UPDATE issuance SET quantity = quantity + 1"))

    def test_an_event_must_extend_its_chain(self, session: Session) -> None:
        a, _, _ = self._setup(session)
        with pytest.raises(IntegrityError, match="does not link"), session.begin_nested():
            session.execute(
                text("""
                INSERT INTO audit_event (account_id, seq, kind, credit_type_id, batch_id, serial_start, serial_end,
                                         actor_role, occurred_at, prev_hash, hash)
                SELECT account_id, seq + 1, kind, credit_type_id, batch_id, serial_start, serial_end, actor_role,
                       occurred_at, decode(repeat('ab', 32), 'hex'), decode(repeat('cd', 32), 'hex')
                  FROM audit_event WHERE account_id = :a"""),
                {"a": a},
            )


class TestMoveAnswers:
    """What `registry_move` answers, as each caller reads it."""

    def test_everything_of_every_credit_type_moves_named_by_code_in_serial_order(
        self, session: Session
    ) -> None:
        a, b = f.account(session), f.account(session)
        cdcer = f.issue(session, a.id, 5, credit_type="CDCER")
        ccer = f.issue(session, a.id, 10)
        moved = ledger.transfer(session, f.system(), from_account_id=a.id, to_account_id=b.id,
                                selection=Selection())  # fmt: skip
        assert [(m.credit_type, m.batch_id, m.quantity) for m in moved.blocks] == [
            ("CCER", ccer.id, 10),
            ("CDCER", cdcer.id, 5),
        ]
        assert blocks(session, a.id) == [] and blocks(session, b.id, "CDCER") == [
            (cdcer.serial_start, cdcer.serial_end, "available")
        ]

    def test_an_unknown_credit_type_is_refused_before_an_unknown_account(self, session: Session) -> None:
        a = f.account(session)
        with pytest.raises(NotFound, match="credit type"):
            ledger.transfer(session, f.system(), from_account_id=a.id, to_account_id=uuid.uuid4(),
                            selection=Selection(credit_type="NOPE", quantity=1))  # fmt: skip
        with pytest.raises(NotFound, match="account"):
            ledger.transfer(session, f.system(), from_account_id=a.id, to_account_id=uuid.uuid4(),
                            selection=ccer(1))  # fmt: skip


class TestSpanFunction:
    """`registry_span` packs (credit type, serials) into the range every span index and check reads."""

    def test_it_dissolves_into_the_statements_that_use_it(self, session: Session) -> None:
        """Each row written to `holding` or `audit_event` computes its span with it: a call of its own per
        row (a SQL function that PostgreSQL cannot inline runs an executor of its own) cost a transfer a
        tenth of its database work (migration 0017)."""
        plan = "\n".join(
            session.execute(
                text("EXPLAIN (VERBOSE) SELECT registry_span(credit_type_id, serial_start, serial_end) FROM holding")
            ).scalars().all()
        )  # fmt: skip
        assert "int8range(" in plan and "registry_span" not in plan, plan

    def test_any_missing_part_gives_no_span_never_an_unbounded_one(self, session: Session) -> None:
        rows = session.execute(
            text(
                "SELECT registry_span(NULL, 1, 2) IS NULL, registry_span(1::smallint, NULL, 2) IS NULL, "
                "registry_span(1::smallint, 1, NULL) IS NULL, registry_span(2::smallint, 5, 7)"
            )
        ).one()
        assert rows[:3] == (True, True, True)
        assert (rows[3].lower, rows[3].upper) == ((2 << 40) + 5, (2 << 40) + 8)


Pair = tuple[tuple[int, int, int], tuple[int, int, int]]


class TestBoxOverlap:
    """The overlap indexes (the no-overlap constraint, a unit's history) are built on `registry_box`, a box
    of (serial, credit type), not on the range (migration 0018): the two must agree exactly on which blocks
    overlap, or the constraint would let two blocks share a unit, or refuse two that do not."""

    # (ct, s, e) pairs at the edges: sharing one unit, adjacent, one-unit blocks, the top serial
    EDGES: ClassVar[list[Pair]] = [
        ((1, 1, 10), (1, 10, 20)), ((1, 1, 10), (1, 11, 20)), ((1, 5, 5), (1, 5, 5)), ((1, 5, 5), (1, 6, 6)),
        ((1, 5, 5), (1, 4, 4)), ((1, 1, 10), (2, 1, 10)), ((1, 1, 10), (2, 10, 10)),
        ((1, SERIAL_MAX - 1, SERIAL_MAX), (1, SERIAL_MAX, SERIAL_MAX)),
        ((1, SERIAL_MAX - 1, SERIAL_MAX - 1), (1, SERIAL_MAX, SERIAL_MAX)),
        ((32767, SERIAL_MAX, SERIAL_MAX), (32767, SERIAL_MAX, SERIAL_MAX)),
        ((32766, 1, SERIAL_MAX), (32767, 1, SERIAL_MAX)), ((1, 1, SERIAL_MAX), (1, 123456789, 123456789)),
    ]  # fmt: skip

    def _agree(self, session: Session, pairs: list[Pair]) -> int:
        rows = session.execute(
            text("""
                SELECT registry_box(a.ct, a.s, a.e) && registry_box(b.ct, b.s, b.e),
                       registry_span(a.ct, a.s, a.e) && registry_span(b.ct, b.s, b.e)
                  FROM unnest(CAST(:act AS smallint[]), CAST(:as_ AS bigint[]), CAST(:ae AS bigint[]),
                              CAST(:bct AS smallint[]), CAST(:bs AS bigint[]), CAST(:be AS bigint[]))
                       AS p(act, as_, ae, bct, bs, be),
                       LATERAL (SELECT p.act AS ct, p.as_ AS s, p.ae AS e) a,
                       LATERAL (SELECT p.bct AS ct, p.bs AS s, p.be AS e) b"""),
            {"act": [a[0] for a, _ in pairs], "as_": [a[1] for a, _ in pairs], "ae": [a[2] for a, _ in pairs],
             "bct": [b[0] for _, b in pairs], "bs": [b[1] for _, b in pairs], "be": [b[2] for _, b in pairs]},
        ).all()  # fmt: skip
        assert [box for box, _ in rows] == [span for _, span in rows], pairs
        return sum(1 for box, _ in rows if box)

    def test_box_and_range_agree_at_the_edges(self, session: Session) -> None:
        assert self._agree(session, self.EDGES) == 5

    def test_box_and_range_agree_at_random(self, session: Session) -> None:
        rng = random.Random(18)

        def block() -> tuple[int, int, int]:
            scale = rng.choice((20, 10**6, SERIAL_MAX))
            s = rng.randint(max(1, SERIAL_MAX - scale) if rng.random() < 0.3 else 1, SERIAL_MAX)
            return rng.choice((1, 2, 3)), s, min(SERIAL_MAX, s + rng.randint(0, rng.choice((0, 3, 10**4))))

        pairs = []
        for _ in range(5_000):
            a = block()
            near = (
                a[0],
                min(SERIAL_MAX, max(1, a[1] + rng.randint(-12, 12))),
                0,
            )  # touching, sharing, one apart
            b = (near[0], near[1], min(SERIAL_MAX, near[1] + rng.randint(0, 5)))
            pairs.append((a, b if rng.random() < 0.8 else block()))
        overlapping = self._agree(session, pairs)
        assert 500 < overlapping < 4_500  # both outcomes well represented

    def test_a_units_history_and_the_conservation_check_search_the_box_index(self, session: Session) -> None:
        session.execute(text("SET LOCAL enable_seqscan = off"))
        history = "\n".join(session.execute(text(
            "EXPLAIN SELECT id FROM audit_event e WHERE registry_box(e.credit_type_id, e.serial_start, "
            "e.serial_end) && registry_box(CAST(1 AS smallint), 5, 5)")).scalars())  # fmt: skip
        assert "ix_audit_event_span" in history, history
        source = session.execute(
            text("SELECT prosrc FROM pg_proc WHERE proname = 'holding_conserved'")
        ).scalar_one()
        join = source.split("LEFT JOIN holding h ON ")[1].split("\n")[0]
        blocks = "\n".join(session.execute(text(
            f"EXPLAIN SELECT h.id FROM unnest(ARRAY[registry_span(CAST(1 AS smallint), 5, 9)]) AS o (span) "
            f"LEFT JOIN holding h ON {join}")).scalars())  # fmt: skip
        assert "ex_holding_no_overlap" in blocks, blocks


def test_the_conservation_check_looks_up_each_batch_by_its_key_on_its_generic_plan(session: Session) -> None:
    """At commit, `holding_conserved` (on generic plans: migration 0019) finds each written block's batch
    through the issuance key; as a join under LIMIT 1 its generic plan was a scan of every issuance."""
    config, source = session.execute(
        text("SELECT proconfig, prosrc FROM pg_proc WHERE proname = 'holding_conserved'")
    ).one()
    assert "plan_cache_mode=force_generic_plan" in config
    # Issuances enough, and analyzed, for a scan of them to cost more than a probe: in a savepoint undone
    # after the plan is read (batches without blocks are what the ledger checks refuse).
    account = f.account(session)
    planned = session.begin_nested()
    session.execute(
        text(
            "INSERT INTO issuance (id, credit_type_id, project_code, project_type, vintage, quantity, serial_start,"
            " serial_end, account_id, issued_at) SELECT gen_random_uuid(), 1, 'P', 'forestry', 2025, 1,"
            " 900000000000 + g, 900000000000 + g, :a, now() FROM generate_series(1, 1000) g"
        ),
        {"a": account.id},
    )
    session.execute(text("ANALYZE issuance"))
    lookup = source.split("INTO bad\n")[2].split(";")[0]
    lookup = lookup.replace("NEW.new_batches", "CAST($1 AS uuid[])").replace(
        "NEW.new_spans", "CAST($2 AS int8range[])"
    )
    plan = "\n".join(session.execute(text(f"EXPLAIN (GENERIC_PLAN) SELECT 1 {lookup}")).scalars())
    planned.rollback()
    assert "Index Scan using pk_issuance" in plan and "Seq Scan on issuance" not in plan, plan
