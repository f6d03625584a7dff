"""`registry.db.run`, the hot paths' way to the database: the same rows and the same exceptions as
`session.execute`, so that the problem mapping and the retries cannot tell the two apart."""

from __future__ import annotations

import psycopg.errors
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from registry import isolation
from registry.db import driver_sql, run
from tests import factories as f


def test_rows_come_back_by_name(session: Session) -> None:
    rows = run(session, "SELECT %(a)s::int + 1 AS n, %(b)s::text AS word", {"a": 41, "b": "pledge"})
    assert [(r.n, r.word) for r in rows] == [(42, "pledge")]
    assert run(session, "SELECT 1 WHERE false", {}) == []


def test_a_statement_without_rows_returns_none_of_them(session: Session) -> None:
    account = f.account(session)
    assert run(session, "UPDATE account SET status = status WHERE id = %(i)s", {"i": account.id}) == []


def test_a_violation_is_sqlalchemys_integrity_error_naming_its_constraint(session: Session) -> None:
    account, other = f.account(session), f.account(session)
    savepoint = session.begin_nested()
    with pytest.raises(IntegrityError) as refused:
        run(
            session,
            "UPDATE account SET number = %(n)s WHERE id = %(i)s",
            {"n": account.number, "i": other.id},
        )
    savepoint.rollback()
    assert isinstance(refused.value.orig, psycopg.errors.UniqueViolation)
    assert refused.value.orig.diag.constraint_name == "uq_account_number"
    # The transaction goes on after the savepoint's rollback, as after any refused statement.
    assert (
        session.execute(text("SELECT count(*) FROM account WHERE id = :i"), {"i": account.id}).scalar() == 1
    )


def test_a_statement_written_for_text_runs_alike_through_the_driver(session: Session) -> None:
    """`driver_sql`: one statement for both paths. Parameters become psycopg's; casts, escaped colons and
    a literal percent stay what they were."""
    sql = "SELECT CAST(:a AS int) + 1 AS n, '50%' AS share, '\\:kept'::text AS kept, :b AS word"
    params = {"a": 41, "b": "pledge"}
    expected = session.execute(text(sql), params).one()
    assert (
        driver_sql(sql)
        == "SELECT CAST(%(a)s AS int) + 1 AS n, '50%%' AS share, ':kept'::text AS kept, %(b)s AS word"
    )
    (row,) = run(session, driver_sql(sql), params)
    assert tuple(row) == tuple(expected) == (42, "50%", ":kept", "pledge")


def test_a_name_used_twice_is_one_value_and_a_long_statement_runs_alike(session: Session) -> None:
    """Statements are sent with PostgreSQL's own placeholders, worked out once each: a name used twice is
    one parameter, and a statement of more than 50 of them (a pledge's insert has that many) runs alike."""
    (row,) = run(session, "SELECT %(a)s::int + %(a)s::int AS twice, '5%%' AS share", {"a": 21})
    assert (row.twice, row.share) == (42, "5%")
    names = [f"p{n}" for n in range(60)]
    sql = "SELECT " + " + ".join(f"%({name})s::int" for name in names) + " AS total"
    for _ in range(3):  # and again, once prepared on the server
        assert run(session, sql, {name: n for n, name in enumerate(names)})[0].total == sum(range(60))


def test_a_savepoint_taken_before_a_statement_undoes_it_alone(session: Session) -> None:
    """A savepoint the session opens is sent before the next statement through `run`, so that rolling it
    back undoes that statement and nothing before it (registry/isolation.py relies on it)."""
    account = f.account(session)
    run(session, "UPDATE account SET number = %(n)s WHERE id = %(i)s", {"n": "KEPT-1", "i": account.id})
    refused = isolation.attempt(session, lambda: [
        run(session, "UPDATE account SET number = %(n)s WHERE id = %(i)s", {"n": "UNDONE-2", "i": account.id}),
        run(session, "SELECT 1 / 0", {}),
    ])  # fmt: skip
    assert isinstance(refused, DBAPIError) and isolation.sqlstate(refused) == "22012"
    assert (
        run(session, "SELECT number FROM account WHERE id = %(i)s", {"i": account.id})[0].number == "KEPT-1"
    )
    # and again: a second savepoint in the same transaction, its statement kept when it succeeds
    isolation.attempt(
        session,
        lambda: run(session, "UPDATE account SET number = 'KEPT-3' WHERE id = %(i)s", {"i": account.id}),
    )
    assert (
        run(session, "SELECT number FROM account WHERE id = %(i)s", {"i": account.id})[0].number == "KEPT-3"
    )
