"""The app's database role cannot change history, whatever statement it is made to run.

Everything here runs as `registry_app` (what the app connects as), on a database with history in it; the
refusals come from the privilege system (SQLSTATE 42501), before any trigger is consulted."""

from __future__ import annotations

import httpx
import pytest
from psycopg import errors
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from registry.db import unit_of_work
from registry.ledger.models import PartyKind
from registry.principal import Role
from tests import factories as f
from tests.conftest import Live

ATTEMPTS = [
    "UPDATE audit_event SET reason = 'edited' WHERE id = (SELECT min(id) FROM audit_event)",
    "DELETE FROM audit_event",
    "TRUNCATE audit_event",
    "UPDATE valuation SET price = 1",
    "DELETE FROM valuation",
    "UPDATE issuance SET quantity = quantity + 1",
    "DELETE FROM issuance",
    "UPDATE certificate SET content = '{}'::jsonb",
    "UPDATE certificate SET verification_code = 'AAAAAAAAAAAA'",
    "DELETE FROM certificate",
    "DELETE FROM pledge",
    "DELETE FROM instruction",
    "ALTER TABLE audit_event DISABLE TRIGGER ALL",
    "SET session_replication_role = replica",
    "DROP TABLE audit_event",
    "UPDATE pledge_event SET operator = 'someone else'",
    "DELETE FROM pledge_event",
    "TRUNCATE pledge_event",
    "DELETE FROM pledge_chain",
    "UPDATE alembic_version SET version_num = '0001_ledger_core'",
    # the conservation checks a transaction left for its commit: the app can neither drop nor forge them
    "DELETE FROM holding_pending_check",
    "TRUNCATE holding_pending_check",
    "UPDATE holding_pending_check SET old_spans = '{}'",
    "INSERT INTO holding_pending_check (old_spans, new_batches, new_spans) VALUES ('{}', '{}', '{}')",
    "SELECT * FROM holding_pending_check",
    # what an injected string would try: a harmless statement, then the damage
    "SELECT 1; DELETE FROM audit_event",
]


@pytest.fixture
def history(live: Live, committed_engine: Engine) -> None:
    """A pledge made and confirmed through the app itself, running as the restricted role."""
    with unit_of_work(committed_engine) as s:
        bank, pledgor = f.party(s, PartyKind.BANK), f.party(s)
        account = f.account(s, pledgor)
        other_account = f.account(s).id
        f.issue(s, account.id, 1000)
        bank_key = f.auth(f.key(s, bank, Role.BANK))
        op_key = f.auth(f.key(s, f.the_exchange(s), Role.EXCHANGE, operator="op"))
        pledgor_key = f.auth(f.key(s, pledgor, Role.HOLDER, operator="finance"))
    with httpx.Client(base_url=live.url, timeout=30) as http:
        pledge = http.post("/v1/pledges", headers=bank_key, json=f.pledge_body(account.id, pledgor.id, 100))
        assert pledge.status_code == 201, pledge.text
        agreed = http.post(
            f"/v1/instructions/{pledge.json()['instructions'][0]['id']}/consent", headers=pledgor_key
        )
        assert agreed.status_code == 200, agreed.text
        confirmed = http.post(
            f"/v1/instructions/{pledge.json()['instructions'][0]['id']}/confirm", headers=op_key
        )
        assert confirmed.status_code == 200, confirmed.text
        pdf = http.get(f"/v1/pledges/{pledge.json()['id']}/certificate", headers=bank_key)
        assert pdf.status_code == 200  # stored as the app role: the column grants allow exactly that
        # a settlement batch, as the app role: its blocks and events go in by COPY, which needs only INSERT
        other = str(other_account)
        lines = [
            {
                "from_account_id": str(account.id),
                "to_account_id": other,
                "credit_type": "CCER",
                "quantity": 5,
            },
            {
                "from_account_id": other,
                "to_account_id": str(account.id),
                "credit_type": "CCER",
                "quantity": 2,
            },
        ]
        settled = http.post("/v1/transfers/batch", headers=op_key, json={"transfers": lines})
        assert settled.status_code == 201, settled.text


@pytest.mark.parametrize("statement", ATTEMPTS)
def test_the_app_role_cannot_change_history(history: None, app_engine: Engine, statement: str) -> None:
    with app_engine.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "registry_app"
        with pytest.raises(DBAPIError) as refused:
            conn.exec_driver_sql(statement)
        assert isinstance(refused.value.orig, errors.InsufficientPrivilege), refused.value


DESTRUCTIONS = [
    # a block shrunk, its rest not put back
    ["UPDATE holding SET serial_end = serial_end - 1 WHERE id = (SELECT max(id) FROM holding)"],
    # a block removed
    ["DELETE FROM holding WHERE id = (SELECT max(id) FROM holding)"],
    # a settlement's shape (a delete, then the blocks written again), one unit short
    [
        "CREATE TEMP TABLE gone AS SELECT * FROM holding WHERE id = (SELECT max(id) FROM holding)",
        "DELETE FROM holding WHERE id = (SELECT id FROM gone)",
        "INSERT INTO holding (credit_type_id, batch_id, serial_start, serial_end, account_id, status) "
        "SELECT credit_type_id, batch_id, serial_start + 1, serial_end, account_id, status FROM gone",
    ],
]


@pytest.mark.parametrize("statements", DESTRUCTIONS)
def test_the_app_role_cannot_destroy_units(history: None, app_engine: Engine, statements: list[str]) -> None:
    """The conservation check runs as its owner at commit whoever wrote the blocks, and the app role's
    attempt to destroy units is refused with the constraint's name; nothing is left pending."""
    with app_engine.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
        with pytest.raises(DBAPIError) as refused:
            conn.commit()
        assert isinstance(refused.value.orig, errors.CheckViolation), refused.value
        assert refused.value.orig.diag.constraint_name == "holding_conserved"
        assert "would be destroyed" in str(refused.value)
