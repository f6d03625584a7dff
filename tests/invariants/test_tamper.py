"""Tampering done as a superuser, bypassing the append-only triggers, is caught by verification."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine, text

from registry.audit.service import verify_chains
from registry.db import unit_of_work
from registry.ledger import service as ledger
from registry.ledger.consistency import find_problems
from registry.ledger.models import PartyKind
from registry.ledger.service import Selection
from registry.principal import Role
from tests import factories as f


def _history(engine: Engine) -> tuple[str, list[int]]:
    with unit_of_work(engine) as s:
        auditor = f.key(s, f.party(s, PartyKind.AUDITOR), Role.AUDITOR)
        a, b = f.account(s).id, f.account(s).id
        f.issue(s, a, 1000)
        for q in (10, 20, 30):
            ledger.transfer(
                s,
                f.system(),
                from_account_id=a,
                to_account_id=b,
                selection=Selection(credit_type="CCER", quantity=q),
            )
    with engine.connect() as conn:
        ids = list(conn.execute(text("SELECT id FROM audit_event ORDER BY id")).scalars())
    return auditor, ids


def _as_superuser(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("SET LOCAL session_replication_role = replica")
        )  # triggers off: what an intruder does
        conn.execute(text(sql), params)


def test_untouched_history_verifies(committed_engine: Engine) -> None:
    _, ids = _history(committed_engine)
    result = verify_chains(committed_engine)
    assert result.ok and result.events == len(ids) and len(result.head_hash) == 64


def test_an_edited_event_is_named(committed_engine: Engine, live_url: str) -> None:
    auditor, ids = _history(committed_engine)
    victim = ids[2]
    _as_superuser(
        committed_engine, "UPDATE audit_event SET serial_end = serial_end + 5 WHERE id = :id", id=victim
    )
    result = verify_chains(committed_engine)
    assert not result.ok
    assert result.first_bad_event is not None and result.first_bad_event.id == victim
    body = httpx.get(f"{live_url}/v1/audit/verify", headers=f.auth(auditor), timeout=30).json()
    assert body["ok"] is False and body["first_bad_event"]["id"] == victim


def test_a_rehashed_event_breaks_the_link_to_the_next(committed_engine: Engine) -> None:
    _, ids = _history(committed_engine)
    # The intruder edits an event and recomputes its own hash: the next event no longer links to it.
    with committed_engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM audit_event WHERE id = :id"), {"id": ids[1]}).one()._asdict()
    from registry.audit.chain import link

    row["reason"] = "nothing to see"
    new_hash = link(bytes(row["prev_hash"]), row)
    _as_superuser(
        committed_engine,
        "UPDATE audit_event SET reason = 'nothing to see', hash = :h WHERE id = :id",
        h=new_hash,
        id=ids[1],
    )
    result = verify_chains(committed_engine)
    assert not result.ok and result.first_bad_event is not None
    assert result.first_bad_event.id == ids[2]  # the first event whose prev_hash no longer matches


def test_a_removed_last_event_is_noticed(committed_engine: Engine) -> None:
    _, ids = _history(committed_engine)
    _as_superuser(committed_engine, "DELETE FROM audit_event WHERE id = :id", id=ids[-1])
    result = verify_chains(committed_engine)
    assert not result.ok and result.first_bad_event is not None
    assert "head" in result.first_bad_event.problem


def test_a_removed_middle_event_is_a_gap(committed_engine: Engine) -> None:
    _, ids = _history(committed_engine)
    _as_superuser(committed_engine, "DELETE FROM audit_event WHERE id = :id", id=ids[2])
    result = verify_chains(committed_engine)
    assert result.first_bad_event is not None and result.first_bad_event.id == ids[3]
    assert "gap" in result.first_bad_event.problem


def test_blocks_moved_behind_the_trails_back_differ_from_its_replay(committed_engine: Engine) -> None:
    """Units given to another account by editing the blocks, triggers off, no event written: the chains
    still verify (nothing in them changed), but the blocks no longer match a replay of the trail."""
    _history(committed_engine)
    with unit_of_work(committed_engine) as s:
        assert find_problems(s) == []
        thief = f.account(s).id
    _as_superuser(
        committed_engine,
        "UPDATE holding SET account_id = :thief WHERE id = (SELECT max(id) FROM holding WHERE status = 'available')",
        thief=thief,
    )
    assert verify_chains(committed_engine).ok
    with unit_of_work(committed_engine) as s:
        problems = find_problems(s)
    assert [p for p in problems if p.startswith("the blocks differ from a replay of the audit trail")]
    assert str(thief) in " ".join(problems)


# --- the decision trail: who consented, reviewed and confirmed --------------------------------------


def _decisions(engine: Engine) -> list[int]:
    """A pledge asked by a bank, consented by its pledgor, a disposal reviewed and confirmed by two persons."""
    from decimal import Decimal

    from registry.pledge import service as pledges
    from registry.pledge.states import InstructionType

    with unit_of_work(engine) as s:
        bank, owner = f.party(s, PartyKind.BANK), f.party(s)
        account = f.account(s, owner).id
        f.account(s, bank)
        f.issue(s, account, 1000)
        made = pledges.register(
            s, f.bank_actor(bank), pledgor_account_id=account, borrower_party_id=owner.id,
            loan=pledges.Loan("T-1", Decimal("10000.00"), f.AT.date(), f.AT.date().replace(year=2027)),
            collateral=Selection(credit_type="CCER", quantity=100),
            terms=pledges.Terms(Decimal("0.7"), Decimal("1.3"), Decimal("1.1")),
        )  # fmt: skip
        f.consent(s, made)
        pledges.confirm(s, f.exchange_actor(s, "op-1"), made.instruction.id)
        disposal = pledges.request(s, f.bank_actor(bank), made.pledge.id, kind=InstructionType.DISPOSE)
        pledges.confirm(s, f.exchange_actor(s, "op-1"), disposal.id, price=Decimal("70.00"))
        pledges.confirm(s, f.exchange_actor(s, "op-2"), disposal.id)
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT id FROM pledge_event ORDER BY id")).scalars())


def test_the_decision_trail_verifies_and_names_each_person(committed_engine: Engine) -> None:
    ids = _decisions(committed_engine)
    with committed_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT kind, actor_role, operator, terms FROM pledge_event ORDER BY id")
        ).all()
    assert [(r.kind, r.actor_role, r.operator) for r in rows] == [
        ("ask", "bank", None), ("consent", "holder", None), ("confirm", "exchange", "op-1"),
        ("ask", "bank", None), ("review", "exchange", "op-1"), ("confirm", "exchange", "op-2"),
    ]  # fmt: skip
    assert '"price":"70.00"' in rows[4].terms and rows[5].terms == rows[4].terms  # applied = reviewed
    result = verify_chains(committed_engine)
    assert result.ok and result.events >= len(ids)


def test_an_edited_decision_is_named(committed_engine: Engine) -> None:
    """The intruder changes who reviewed the disposal: the decision trail names the edited event."""
    ids = _decisions(committed_engine)
    review = ids[4]
    _as_superuser(committed_engine, "UPDATE pledge_event SET operator = 'op-2' WHERE id = :id", id=review)
    result = verify_chains(committed_engine)
    assert not result.ok and result.first_bad_event is not None
    bad = result.first_bad_event
    assert bad.id == review and bad.trail == "decisions" and bad.pledge_id is not None
    assert "hash" in bad.problem


def test_a_removed_last_decision_is_noticed(committed_engine: Engine) -> None:
    ids = _decisions(committed_engine)
    _as_superuser(committed_engine, "DELETE FROM pledge_event WHERE id = :id", id=ids[-1])
    result = verify_chains(committed_engine)
    assert not result.ok and result.first_bad_event is not None
    assert result.first_bad_event.trail == "decisions" and "head" in result.first_bad_event.problem


def test_decisions_cannot_be_changed_with_the_triggers_on(committed_engine: Engine) -> None:
    import pytest
    from sqlalchemy.exc import DBAPIError

    ids = _decisions(committed_engine)
    for sql in (
        "UPDATE pledge_event SET reason = 'x' WHERE id = :id",
        "DELETE FROM pledge_event WHERE id = :id",
        "DELETE FROM pledge_chain WHERE pledge_id = (SELECT pledge_id FROM pledge_event WHERE id = :id)",
    ):
        with pytest.raises(DBAPIError, match="append-only"), committed_engine.begin() as conn:
            conn.execute(text(sql), {"id": ids[0]})
