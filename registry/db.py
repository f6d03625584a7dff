"""The database: where it is (a given DATABASE_URL, or an embedded PostgreSQL), engines, migrations."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg.pq import ExecStatus
from psycopg.rows import namedtuple_row
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from registry.config import Settings

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"

_embedded: dict[Path, Any] = {}


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the pgserver PostgreSQL in `data_dir`; returns its SQLAlchemy URL.

    The server lives as long as some process holds it (pgserver's cleanup_mode='stop')."""
    if "XDG_RUNTIME_DIR" not in os.environ:  # pgserver keeps its lock file there
        runtime = Path(f"/tmp/registry-runtime-{os.getuid()}")  # noqa: S108  (private: mode 0700)
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    import pgserver

    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every pg_ctl call at INFO
    data_dir = data_dir.resolve()
    if data_dir not in _embedded:
        data_dir.mkdir(parents=True, exist_ok=True)
        _forget_dead_holders(data_dir)
        _embedded[data_dir] = pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
    uri: str = _embedded[data_dir].get_uri()
    return "postgresql+psycopg://" + uri.removeprefix("postgresql://")


def _forget_dead_holders(data_dir: Path) -> None:
    """pgserver stops the server when its last holder lets go, counting holders by pid in a file of the
    data folder. A holder that was killed (kill -9, a crash) never takes its pid out, and the server then
    outlives every later holder: pids no longer running are dropped first, under pgserver's own lock."""
    import json

    from pgserver.postgres_server import PostgresServer

    holders = data_dir / ".handle_pids.json"
    with PostgresServer._lock:
        if not holders.exists():
            return
        pids = json.loads(holders.read_text() or "[]")
        alive = [pid for pid in pids if _running(pid)]
        if alive != pids:
            holders.write_text(json.dumps(alive))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        return True
    return True


def release_embedded(data_dir: Path) -> None:
    """Let go of the embedded server in `data_dir` if this process started or joined it: the last holder
    stops the server (what pgserver also does at a normal exit; `registry serve` calls it on its way out,
    after a signal too)."""
    server = _embedded.pop(data_dir.resolve(), None)
    if server is not None:
        server.cleanup()


def pg_tool(name: str) -> str:
    """A PostgreSQL client program (pg_dump, pg_restore, psql): the embedded server's own, else the PATH's."""
    import shutil

    try:
        import pgserver

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / name
        if bundled.exists():
            return str(bundled)
    except ImportError:  # pragma: no cover - pgserver is a dependency
        pass
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: install the PostgreSQL client programs")
    return found


def libpq_url(url: str) -> str:
    """The URL as libpq programs take it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


APP_ROLE = "registry_app"


def as_role(url: str, role: str) -> str:
    return make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


def app_database_url(settings: Settings) -> str:
    """Where the app's requests connect: the restricted role when there is one (see migration 0006)."""
    if settings.app_database_url:
        return settings.app_database_url
    if not settings.database_url:
        return as_role(start_embedded(settings.data_dir), APP_ROLE)
    log.warning(
        "the app connects as DATABASE_URL's user; set REGISTRY_APP_DATABASE_URL to a role granted %s so that "
        "it cannot change history (docs/operations.md)",
        APP_ROLE,
    )
    return settings.database_url


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.data_dir)


def make_engine(url: str, *, pool_size: int = 10, **kwargs: Any) -> Engine:
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per request. A connection lost to a database restart
        # fails its one request (503, retryable) and the pool replaces it.
        pool_recycle=3600,
        connect_args={"application_name": "registry"},
        **kwargs,
    )

    @event.listens_for(engine, "connect")
    def _session_defaults(dbapi_conn: Any, _record: Any) -> None:
        # A ledger write that waits this long for a row lock is stuck behind something wrong:
        # fail it (mapped to 503 busy, nothing changed) rather than pile up connections.
        with dbapi_conn.cursor() as cur:
            cur.execute("SET lock_timeout = '10s'; SET statement_timeout = '120s'; SET TIME ZONE 'UTC'")
        dbapi_conn.commit()

    return engine


# SQLAlchemy's own pattern for a bound parameter in text(): `:name`, not a `::` cast nor an escaped `\:`.
_BIND = re.compile(r"(?<![:\w\x5c]):(\w+)(?!:)")


@lru_cache(maxsize=64)
def driver_sql(sql: str) -> str:
    """A statement written for SQLAlchemy's `text()` (`:name` parameters) as `run` takes it (psycopg's
    `%(name)s`; a literal `%` doubled, an escaped `\\:` a colon, as `text()` sends it), so that one statement
    serves both paths."""
    return _BIND.sub(r"%(\1)s", sql.replace("%", "%%")).replace("\\:", ":")


# psycopg's named placeholder, and its escaped percent sign.
_NAMED = re.compile(r"%\((\w+)\)s|%%")


@lru_cache(maxsize=256)
def _positional(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """A statement for `run` in PostgreSQL's own `$n` placeholders, with the names they stand for, worked
    out once: psycopg's raw cursor then sends the text as it is. Its named form is parsed again on every
    call once a statement is over 4 KB or 50 parameters (a pledge with its first instruction is both),
    which cost a registration more client CPU than anything else it did."""
    names: dict[str, int] = {}

    def place(found: re.Match[str]) -> str:
        if found.group(1) is None:
            return "%"
        return f"${names.setdefault(found.group(1), len(names) + 1)}"

    return _NAMED.sub(place, sql).encode(), tuple(names)


TUPLES_OK = ExecStatus.TUPLES_OK


def run(session: Session, sql: str, params: Mapping[str, Any]) -> list[Any]:
    """One statement of a hot path straight through psycopg, in the session's transaction, prepared on the
    server after its first runs: a third of the client CPU of `session.execute(text(...))` (116 against 370
    µs a statement; since it sends `$n` placeholders, 120 against 141 µs for a four-parameter one). Rows are
    named tuples. A failure comes back as SQLAlchemy's exception, as from any other statement, so the
    problem mapping and the retry rules see no difference; a lost connection is invalidated, so the pool
    replaces it."""
    connection = session.connection()
    raw = connection.connection.driver_connection
    assert raw is not None
    query, names = _positional(sql)
    try:
        with psycopg.RawCursor(raw, row_factory=namedtuple_row) as cursor:
            cursor.execute(query, [params[name] for name in names], prepare=True)
            result = cursor.pgresult  # its status, not `description`, which builds every column's object
            return cursor.fetchall() if result is not None and result.status == TUPLES_OK else []
    except psycopg.Error as exc:
        lost = connection.dialect.is_disconnect(cast(Any, exc), raw, None)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            sql, params, exc, psycopg.Error, connection_invalidated=lost, dialect=connection.dialect
        ) from exc


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends normally, rolled back on any error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def beside(session: Session) -> Iterator[Session]:
    """A short transaction of its own next to `session`'s, committed when the block ends, so that
    concurrent requests see what it wrote at once, whatever becomes of `session`'s. (For a session bound
    to one connection, as the tests' rolled-back sessions are, it is a savepoint on that connection.)"""
    bind = session.get_bind()
    with (
        Session(bind=bind, expire_on_commit=False, join_transaction_mode="create_savepoint") as side,
        side.begin(),
    ):
        yield side


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database_url"] = url
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


@dataclass(frozen=True, slots=True)
class SchemaState:
    applied: frozenset[str]  # the revisions alembic_version names
    heads: frozenset[str]  # the migrations' heads in this code

    @property
    def at_head(self) -> bool:
        return self.applied == self.heads


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """The head revisions of the migrations shipped with this code (read once per process)."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())


def schema_state(engine: Engine) -> SchemaState:
    """Which migrations the database has, beside which this code expects; raises when the database
    cannot be reached (or has no migrations table: a DBAPIError like any other)."""
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SET LOCAL statement_timeout = 2000"))
        applied = frozenset(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    return SchemaState(applied, migration_heads())


def describe(url: str) -> str:
    """The URL without its password, for logs."""
    return make_url(url).render_as_string(hide_password=True)
