"""A dump restored into a fresh database is the same registry: checks pass, chains verify to the same
head, certificates are the same bytes (docs/operations.md, "Backup and restore")."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from registry import check
from registry.clock import FixedClock
from registry.config import Settings
from registry.db import libpq_url, make_engine, pg_tool, unit_of_work
from registry.ledger.models import PartyKind
from registry.principal import Role
from tests import factories as f
from tests.conftest import drop


def _some_history(engine: Engine) -> None:
    """Issuance, transfers, a pledge confirmed with its certificate rendered, a release asked."""
    with unit_of_work(engine) as s:
        f.the_exchange(s)
        bank = f.party(s, PartyKind.BANK)
        pledgor = f.party(s)
        account = f.account(s, pledgor)
        f.issue(s, account.id, 5_000)
        bank_key = f.auth(f.key(s, bank, Role.BANK))
        op_key = f.auth(f.key(s, f.the_exchange(s), Role.EXCHANGE, operator="op"))
        pledgor_key = f.auth(f.key(s, pledgor, Role.HOLDER))
    settings = Settings(
        database_url="postgresql://unused/unused", scheduler_enabled=False, certificate_workers=0
    )
    with TestClient(create_app(settings, engine=engine, clock=FixedClock())) as client:
        pledge = client.post(
            "/v1/pledges", headers=bank_key, json=f.pledge_body(account.id, pledgor.id, 2_000)
        )
        client.post(f"/v1/instructions/{pledge.json()['instructions'][0]['id']}/consent", headers=pledgor_key)
        client.post(f"/v1/instructions/{pledge.json()['instructions'][0]['id']}/confirm", headers=op_key)
        assert (
            client.get(f"/v1/pledges/{pledge.json()['id']}/certificate", headers=bank_key).status_code == 200
        )
        client.post(
            f"/v1/pledges/{pledge.json()['id']}/instructions", headers=bank_key, json={"type": "release"}
        )


def test_a_dump_restores_into_a_registry_that_checks_clean(
    committed_engine: Engine, server_url: str, tmp_path: Path
) -> None:
    _some_history(committed_engine)
    before = check.run(committed_engine)
    assert before.ok, before.problems

    dump = tmp_path / "registry.dump"
    source = libpq_url(committed_engine.url.render_as_string(hide_password=False))
    subprocess.run([pg_tool("pg_dump"), "--format=custom", f"--file={dump}", source], check=True)
    name = f"registry_restored_{uuid.uuid4().hex[:8]}"
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    target_url = committed_engine.url.set(database=name).render_as_string(hide_password=False)
    subprocess.run(
        [
            pg_tool("pg_restore"),
            "--no-owner",
            "--exit-on-error",
            f"--dbname={libpq_url(target_url)}",
            str(dump),
        ],
        check=True,
    )
    restored = make_engine(target_url, pool_size=2)
    try:
        after = check.run(restored)
        assert after.ok, after.problems
        assert (after.events, after.chains, after.head_hash) == (
            before.events,
            before.chains,
            before.head_hash,
        )
        query = text("SELECT number, sha256, pdf, status FROM certificate ORDER BY number")
        with committed_engine.connect() as a, restored.connect() as b:
            assert a.execute(query).all() == b.execute(query).all()
        with restored.begin() as conn:  # the restored history is as append-only as the original
            refused = conn.execute(text("SELECT 1")).scalar_one()
            assert refused == 1
        with restored.connect() as conn:
            try:
                conn.execute(text("DELETE FROM audit_event"))
                raise AssertionError("history could be deleted after a restore")
            except Exception as exc:
                assert "append-only" in str(exc)
    finally:
        restored.dispose()
        drop(server_url, name)
