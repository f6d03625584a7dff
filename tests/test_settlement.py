"""Settlement in bulk: a batch of transfers applies all of its lines, in order, exactly as the same
transfers sent one by one would — the same blocks and the same audit trail, hash for hash — or none."""

from __future__ import annotations

import random
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from api.routers.ledger import batch_json, moved
from api.schemas.ledger import TransferBatchRead, TransferResult
from registry.ledger import service as ledger
from registry.ledger import settlement
from registry.ledger.models import PartyKind
from registry.ledger.service import Selection, SerialRange
from registry.principal import Role
from tests import factories as f
from tests.test_api_ledger import snapshot


def world(session: Session, accounts: int = 6) -> list[UUID]:
    ids = [f.account(session).id for _ in range(accounts)]
    for n, account in enumerate(ids[:3]):
        f.issue(session, account, 1000 + 100 * n)
        f.issue(session, account, 500)  # a second batch: blocks of two batches side by side
    return ids


def random_lines(session: Session, ids: list[UUID], count: int, seed: int) -> list[settlement.Line]:
    """Quantities and named blocks, chains of lines (A to B, then B on to C), returns to the first owner."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        a, b = rng.sample(ids, 2)
        if rng.random() < 0.25:
            held = session.execute(
                text("SELECT serial_start, serial_end FROM holding WHERE account_id = :a AND status = 'available' "
                     "ORDER BY serial_start"), {"a": a},
            ).all()  # fmt: skip
            if held:
                # one range, or up to three inside one block (what the block keeps: the gaps between them)
                s, e = rng.choice(held)
                ranges, lo = [], rng.randint(s, e)
                for _ in range(rng.choice((1, 1, 2, 3))):
                    if lo > e:
                        break
                    hi = rng.randint(lo, min(e, lo + 50))
                    ranges.append(SerialRange("CCER", lo, hi))
                    lo = hi + 2 + rng.randint(0, 5)
                lines.append(settlement.Line(a, b, Selection(blocks=ranges)))
                continue
        lines.append(settlement.Line(a, b, Selection(credit_type="CCER", quantity=rng.randint(1, 40))))
    return lines


def state(session: Session) -> tuple[list[Any], list[Any]]:
    blocks = session.execute(
        text(
            "SELECT account_id, batch_id, serial_start, serial_end, status FROM holding ORDER BY serial_start"
        )
    ).all()
    events = session.execute(
        text("SELECT account_id, seq, kind, serial_start, serial_end, from_account_id, to_account_id, hash "
             "FROM audit_event WHERE kind = 'transfer' ORDER BY account_id, seq")
    ).all()  # fmt: skip
    return [tuple(b) for b in blocks], [tuple(e) for e in events]


@pytest.mark.parametrize("seed", range(8))
def test_a_batch_is_the_same_as_its_transfers_one_by_one(session: Session, seed: int) -> None:
    ids = world(session)
    actor = f.system()
    # Lines chosen against the world as it stands; some may not apply (not enough units by then).
    lines = random_lines(session, ids, 60, seed)
    with session.begin_nested() as one_by_one:
        applied = []
        for line in lines:
            try:
                with session.begin_nested():
                    ledger.transfer(session, actor, from_account_id=line.from_account_id,
                                    to_account_id=line.to_account_id, selection=line.selection)  # fmt: skip
                applied.append(line)
            except Exception:
                pass
        expected = state(session)
        one_by_one.rollback()
    assert len(applied) > 30
    settlement.settle(session, actor, applied)
    assert state(session) == expected  # the same blocks, and the same events hash for hash


def test_a_line_naming_several_ranges_of_one_block_leaves_it_the_gaps(session: Session) -> None:
    """The block keeps what lies between the ranges taken out of it, once: each range's own remainders
    would overlap (the database refused that batch at commit, "landed 40 units" of 20)."""
    a, b = (f.account(session).id for _ in range(2))
    f.issue(session, a, 20)
    s = session.execute(text("SELECT serial_start FROM holding WHERE account_id = :a"), {"a": a}).scalar_one()
    named = [
        SerialRange("CCER", s + 7, s + 9),
        SerialRange("CCER", s, s + 4),
        SerialRange("CCER", s + 12, s + 12),
    ]
    moved = settlement.settle(session, f.system(), [settlement.Line(a, b, Selection(blocks=named))])
    session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))  # the commit's checks, now
    assert moved[0].quantity == 9
    rows = session.execute(
        text("SELECT account_id = :a, serial_start - :s, serial_end - :s FROM holding ORDER BY 2"),
        {"a": a, "s": s},
    ).all()
    assert [tuple(r) for r in rows] == [
        (False, 0, 4), (True, 5, 6), (False, 7, 9), (True, 10, 11), (False, 12, 12), (True, 13, 19)
    ]  # fmt: skip


def test_a_line_may_move_what_an_earlier_line_delivered(session: Session) -> None:
    a, b, c = (f.account(session).id for _ in range(3))
    f.issue(session, a, 100)
    moved = settlement.settle(session, f.system(), [
        settlement.Line(a, b, Selection(credit_type="CCER", quantity=60)),
        settlement.Line(b, c, Selection(credit_type="CCER", quantity=50)),
        settlement.Line(c, a, Selection(credit_type="CCER", quantity=10)),
    ])  # fmt: skip
    assert [m.quantity for m in moved] == [60, 50, 10]
    held = dict(session.execute(text("SELECT account_id, sum(quantity) FROM holding GROUP BY 1")).all())
    assert held == {a: 50, b: 10, c: 40}


def test_a_batch_with_failing_lines_changes_nothing_and_names_each(session: Session) -> None:
    ids = world(session)
    closed = f.account(session)
    session.execute(text("UPDATE account SET status = 'closed' WHERE id = :a"), {"a": closed.id})
    before = snapshot(session)
    lines = [
        settlement.Line(ids[0], ids[1], Selection(credit_type="CCER", quantity=10), "T-1"),
        settlement.Line(ids[1], ids[2], Selection(credit_type="CCER", quantity=10**6), "T-2"),
        settlement.Line(ids[0], ids[0], Selection(credit_type="CCER", quantity=1), "T-3"),
        settlement.Line(ids[0], closed.id, Selection(credit_type="CCER", quantity=1), "T-4"),
        settlement.Line(ids[0], ids[1], Selection(credit_type="NOPE", quantity=1), "T-5"),
        settlement.Line(ids[4], ids[1], Selection(blocks=[SerialRange("CCER", 1, 5)]), "T-6"),
        settlement.Line(ids[0], UUID(int=7), Selection(credit_type="CCER", quantity=1), "T-7"),
    ]
    with pytest.raises(settlement.BatchRefused) as refused:
        settlement.settle(session, f.system(), lines)
    errors = {(e.line, e.ref, e.code, e.field) for e in refused.value.errors}
    assert errors == {
        (2, "T-2", "insufficient_units", "quantity"),
        (3, "T-3", "validation_error", "to_account_id"),
        (4, "T-4", "invalid_state", "to_account_id"),
        (5, "T-5", "not_found", "credit_type"),
        (6, "T-6", "insufficient_units", "blocks"),
        (7, "T-7", "not_found", "to_account_id"),
    }
    assert snapshot(session) == before


def test_a_line_refused_after_thousands_of_events_were_sent_drops_them_all(session: Session) -> None:
    """The events go to the database while the lines are played: a line refused late drops every event
    already sent (more than one chunk of them), and the session goes on as if the batch had not come."""
    ids = world(session)
    before = snapshot(session)
    good = [settlement.Line(ids[n % 3], ids[3 + n % 3], Selection(credit_type="CCER", quantity=1), f"T-{n}")
            for n in range(2_500)]  # fmt: skip
    late = settlement.Line(ids[3], ids[0], Selection(credit_type="CCER", quantity=10**6), "T-late")
    with pytest.raises(settlement.BatchRefused) as refused:
        settlement.settle(session, f.system(), [*good, late])
    assert [(e.line, e.ref, e.code) for e in refused.value.errors] == [
        (2_501, "T-late", "insufficient_units")
    ]
    assert snapshot(session) == before
    moved = settlement.settle(session, f.system(), good)
    assert sum(m.quantity for m in moved) == 2_500
    events = session.execute(text("SELECT count(*) FROM audit_event WHERE kind = 'transfer'")).scalar_one()
    assert events >= 2_500


def test_the_trail_keeps_each_lines_reference(session: Session) -> None:
    a, b = f.account(session).id, f.account(session).id
    f.issue(session, a, 10)
    settlement.settle(
        session, f.system(), [settlement.Line(a, b, Selection(credit_type="CCER", quantity=3), "SH-0412")]
    )
    reason = session.execute(text("SELECT reason FROM audit_event WHERE kind = 'transfer'")).scalar_one()
    assert reason == "SH-0412"


# --- through the API ---------------------------------------------------------------------------------


def test_the_batch_answer_is_written_as_its_model_writes_it(session: Session) -> None:
    """The API writes a batch's answer straight as JSON: byte for byte what TransferBatchRead would."""
    ids = world(session)
    refs = [None, "T-1", "碳汇 交易 №7", 'quote " and \\ backslash', "é" * 40]
    # out of the issued accounts, and some back again (blocks split, joined, of two batches)
    lines = [settlement.Line(ids[n % 3], ids[3 + n % 3], Selection(credit_type="CCER", quantity=1 + n % 7),
                             refs[n % len(refs)]) for n in range(40)]  # fmt: skip
    lines += [settlement.Line(ids[3 + n % 3], ids[n % 3], Selection(credit_type="CCER", quantity=1 + n % 3),
                              refs[n % len(refs)]) for n in range(20)]  # fmt: skip
    movements = settlement.settle(session, f.system(), lines)
    results = [
        TransferResult(line=n, ref=line.ref, from_account_id=line.from_account_id,
                       to_account_id=line.to_account_id, quantity=m.quantity, blocks=moved(m))
        for n, (line, m) in enumerate(zip(lines, movements, strict=True), start=1)
    ]  # fmt: skip
    model = TransferBatchRead(
        transfers=len(results), quantity=sum(r.quantity for r in results), results=results
    )
    assert batch_json(lines, movements) == model.model_dump_json()


def test_the_api_settles_a_batch_or_lists_its_failing_lines(client: TestClient, session: Session) -> None:
    exchange = f.auth(f.key(session, f.the_exchange(session), Role.EXCHANGE, operator="op"))
    bank = f.auth(f.key(session, f.party(session, PartyKind.BANK), Role.BANK))
    a, b, c = (str(f.account(session).id) for _ in range(3))
    f.issue(session, UUID(a), 100)
    body = {"transfers": [
        {"from_account_id": a, "to_account_id": b, "credit_type": "CCER", "quantity": 30, "ref": "T-1"},
        {"from_account_id": b, "to_account_id": c, "credit_type": "CCER", "quantity": 20, "ref": "T-2"},
    ]}  # fmt: skip
    assert client.post("/v1/transfers/batch", headers=bank, json=body).status_code == 403
    done = client.post("/v1/transfers/batch", headers={**exchange, "Idempotency-Key": "day-1"}, json=body)
    assert done.status_code == 201, done.text
    assert done.json()["transfers"] == 2 and done.json()["quantity"] == 50
    assert [(r["line"], r["ref"], r["quantity"]) for r in done.json()["results"]] == [
        (1, "T-1", 30),
        (2, "T-2", 20),
    ]
    again = client.post("/v1/transfers/batch", headers={**exchange, "Idempotency-Key": "day-1"}, json=body)
    assert again.content == done.content and again.headers["idempotent-replayed"] == "true"
    before = snapshot(session)
    too_many = {"from_account_id": c, "to_account_id": a, "credit_type": "CCER", "quantity": 999}
    bad = {"transfers": [*body["transfers"], too_many]}
    refused = client.post("/v1/transfers/batch", headers=exchange, json=bad)
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["code"] == "batch_refused" and problem["failing"] == 1
    assert [(e["line"], e["code"]) for e in problem["errors"]] == [(3, "insufficient_units")]
    assert snapshot(session) == before
