"""Test databases: a real PostgreSQL (embedded pgserver, or REGISTRY_TEST_SERVER_URL), schema built by
Alembic into a template once per worker, then cloned.

- `session`: the per-test rollback pattern. One connection, an outer transaction, a session that
  works in savepoints; everything is rolled back at the end. API tests run through this session.
- `committed_engine`: a fresh database of its own, for tests that need real commits (races, deferred
  constraints, tampering); dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from api.app import create_app
from registry.clock import FixedClock, SystemClock
from registry.config import Settings, get_settings
from registry.db import APP_ROLE, as_role, make_engine, migrate, start_embedded
from registry.ledger.consistency import find_problems
from tests.desk import Desk, make_desk

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def server_url() -> str:
    """SQLAlchemy URL of the server's maintenance database."""
    given = os.environ.get("REGISTRY_TEST_SERVER_URL")
    if given:
        return given.replace("postgresql://", "postgresql+psycopg://", 1)
    return start_embedded(Path(os.environ.get("REGISTRY_TEST_DATA_DIR", ROOT / ".registry-test-data")))


def _admin(server_url: str) -> psycopg.Connection:
    url = make_url(server_url).set(drivername="postgresql", database="postgres")
    return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)


def _url_for(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def template_db(server_url: str, worker: str) -> str:
    name = f"registry_tpl_{worker}"
    with _admin(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate(_url_for(server_url, name))
    return name


def clone(server_url: str, template: str, name: str) -> str:
    with _admin(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return _url_for(server_url, name)


def drop(server_url: str, name: str) -> None:
    with _admin(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def engine(server_url: str, template_db: str, worker: str) -> Iterator[Engine]:
    url = clone(server_url, template_db, f"registry_test_{worker}")
    eng = make_engine(url, pool_size=2)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """Rolled back after the test; before that, the ledger must still be consistent (the same checks
    as `registry check`). A test that left its transaction failed is not checked."""
    with engine.connect() as conn:
        outer = conn.begin()
        s = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        problems: list[str] = []
        try:
            yield s
            try:
                problems = find_problems(s)
            except DBAPIError:
                problems = []
        finally:
            s.close()
            outer.rollback()
        assert not problems, "ledger inconsistent after the test:\n" + "\n".join(problems)


@pytest.fixture
def committed_engine(server_url: str, template_db: str, worker: str) -> Iterator[Engine]:
    name = f"registry_t_{worker}_{uuid.uuid4().hex[:10]}"
    eng = make_engine(clone(server_url, template_db, name), pool_size=40)
    yield eng
    eng.dispose()
    drop(server_url, name)


@pytest.fixture
def cli_db(committed_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A committed database that the `registry` command (run in this process) works on."""
    monkeypatch.setenv("DATABASE_URL", committed_engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    yield committed_engine
    get_settings.cache_clear()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def settings() -> Settings:
    return Settings(
        database_url="postgresql://unused/unused",
        key_cache_seconds=0,
        scheduler_enabled=False,
        certificate_workers=0,
        report_workers=0,
    )


@pytest.fixture
def client(session: Session, engine: Engine, clock: FixedClock, settings: Settings) -> Iterator[TestClient]:
    """The whole HTTP stack, working in the test's rolled-back session."""
    app = create_app(settings, engine=engine, clock=clock)

    @contextmanager
    def same_session() -> Iterator[Session]:
        # A savepoint per request (and per API-key lookup): like production's transaction, a failed
        # request leaves nothing behind.
        with session.begin_nested():
            yield session

    app.state.unit_of_work = same_session
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def desk(session: Session) -> Desk:
    """A pledgor with 10,000 CCER, a borrower, two banks and two exchange operators (tests/desk.py)."""
    return make_desk(session)


@dataclass
class Live:
    url: str
    app: FastAPI


@pytest.fixture
def live_url(live: Live) -> str:
    return live.url


@pytest.fixture
def app_engine(committed_engine: Engine) -> Iterator[Engine]:
    """The committed database as the app sees it in production: connected as the restricted role."""
    url = as_role(committed_engine.url.render_as_string(hide_password=False), APP_ROLE)
    engine = make_engine(url, pool_size=40)
    yield engine
    engine.dispose()


@pytest.fixture
def live(app_engine: Engine) -> Iterator[Live]:
    """The real app on a loopback port, over the committed database, as the application role."""
    app = create_app(
        Settings(
            database_url="postgresql://unused/unused",
            key_cache_seconds=0,
            scheduler_enabled=False,
            certificate_workers=0,
            report_workers=0,
        ),
        engine=app_engine,
        clock=SystemClock(),
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield Live(f"http://127.0.0.1:{port}", app)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at its production cost (64 MiB, 3 passes) is the point in production and a minute of CPU
    across the suite; tests hash with the same algorithm at the lowest cost. One test checks the real one."""
    from argon2 import PasswordHasher

    from registry.users import service as users

    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
