"""registry/rows.py: rows read and written by plain statements are, to the session, what the ORM's own
load and flush would have left: the same values, persistent, and nothing left to flush."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text
from sqlmodel import Session

from registry import rows
from registry.db import run
from registry.ledger.models import Account, AccountStatus
from tests import factories as f

_COLUMNS = ", ".join(c.name for c in Account.__table__.columns)  # type: ignore[attr-defined]


def _read(session: Session, account_id: object) -> Account:
    found = run(session, f"SELECT {_COLUMNS} FROM account WHERE id = %(i)s", {"i": account_id})
    return rows.loaded(session, Account, found[0])  # type: ignore[no-any-return]


def test_a_row_read_by_a_statement_is_the_sessions_object_as_the_orm_would_load_it(session: Session) -> None:
    made = f.account(session)
    session.expunge_all()
    account = _read(session, made.id)
    assert inspect(account).persistent and not session.dirty
    assert (account.number, account.status) == (made.number, AccountStatus.ACTIVE)  # members, not strings
    assert session.get(Account, made.id) is account  # one object a row, as the ORM keeps it
    assert _read(session, made.id) is account


def test_saved_changes_are_written_and_leave_nothing_to_flush(session: Session) -> None:
    account = _read(session, f.account(session).id)
    account.number = "RENUMBERED-1"
    rows.save_changes(session, account)
    assert not session.dirty and not session.is_modified(account)
    stored = session.execute(text("SELECT number FROM account WHERE id = :i"), {"i": account.id}).scalar_one()
    assert stored == "RENUMBERED-1" == account.number


def test_a_computed_value_is_the_databases_and_read_back(session: Session) -> None:
    account = _read(session, f.account(session).id)
    rows.compute(account, "number", rows.Computed("SELECT 'N-' || %(base)s::int * 2", {"base": 21}))
    rows.save_changes(session, account)
    assert account.number == "N-42" and not session.is_modified(account)
    stored = session.execute(text("SELECT number FROM account WHERE id = :i"), {"i": account.id}).scalar_one()
    assert stored == "N-42"


def test_a_new_object_has_its_fields_defaults_and_refuses_unknown_or_missing_fields(session: Session) -> None:
    owner = f.party(session)
    made = rows.new(Account, number="NEW-1", party_id=owner.id, created_at=datetime.now(UTC))
    assert made.status == AccountStatus.ACTIVE and made.id is not None  # a default, and a default factory
    rows.insert_new(session, made)
    assert session.get(Account, made.id) is made and not session.dirty
    stored = session.execute(text("SELECT number, status FROM account WHERE id = :i"), {"i": made.id}).one()
    assert tuple(stored) == ("NEW-1", "active")
    with pytest.raises(TypeError, match="needs number"):
        rows.new(Account, party_id=owner.id)
    with pytest.raises(TypeError, match="no field colour"):
        rows.new(Account, number="NEW-2", party_id=owner.id, created_at=made.created_at, colour="green")


def test_the_first_object_a_new_process_makes_is_whole() -> None:
    """In a process that has made no object yet (a fresh worker), the mappers are set up first."""
    script = (
        "import uuid; from registry.rows import new; from registry.pledge.models import Instruction; "
        "i = new(Instruction, pledge_id=uuid.uuid4(), type='register', status='pending', "
        "requested_by_party_id=uuid.uuid4(), created_at=None); print(i.pledge_id == i.__dict__['pledge_id'])"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-2000:]


def test_a_rolled_back_savepoint_takes_back_what_was_written_in_it(session: Session) -> None:
    """As after a rollback of the ORM's own flush: a row saved in the savepoint shows the database's values
    again, a row inserted in it is no longer the session's."""
    account = _read(session, f.account(session).id)
    before = account.number
    owner = f.party(session)
    savepoint = session.begin_nested()
    account.number = "UNDONE-1"
    rows.save_changes(session, account)
    made = rows.new(Account, number="UNDONE-2", party_id=owner.id, created_at=datetime.now(UTC))
    rows.insert_new(session, made)
    savepoint.rollback()
    assert account.number == before  # reloaded
    assert made not in session and session.get(Account, made.id) is None


def _seen_along(account_id: object) -> rows.Along:
    """Writes along that record the account's number as their statement's snapshot shows it."""
    return rows.Along(
        "seen AS (INSERT INTO seen_number SELECT number FROM account WHERE id = %(seen_id)s RETURNING 1)",
        {"seen_id": account_id},
    )


def test_writes_along_are_made_by_the_statement_that_saves_the_rows(session: Session) -> None:
    """One statement, one snapshot: the writes along see the row as it was before this very statement
    changed it, which a statement of their own after the save would not."""
    session.execute(text("CREATE TEMP TABLE seen_number (number text) ON COMMIT DROP"))
    account = _read(session, f.account(session).id)
    before = account.number
    account.number = "ALONG-1"
    rows.save_changes(session, account, along=_seen_along(account.id))
    assert session.execute(text("SELECT number FROM seen_number")).scalars().all() == [before]
    stored = session.execute(text("SELECT number FROM account WHERE id = :i"), {"i": account.id}).scalar_one()
    assert stored == "ALONG-1" and not session.is_modified(account)


def test_writes_along_are_made_with_new_rows_and_with_nothing_else_to_save(session: Session) -> None:
    session.execute(text("CREATE TEMP TABLE seen_number (number text) ON COMMIT DROP"))
    owner = f.party(session)
    made = rows.new(Account, number="ALONG-2", party_id=owner.id, created_at=datetime.now(UTC))
    rows.insert_new(session, made, along=_seen_along(made.id))
    account = _read(session, f.account(session).id)
    rows.save_changes(session, account, along=_seen_along(account.id))  # nothing changed on the row
    seen = session.execute(text("SELECT number FROM seen_number")).scalars().all()
    # The new row is not in its own statement's snapshot; the unchanged one is.
    assert seen == [account.number] and session.get(Account, made.id) is made
