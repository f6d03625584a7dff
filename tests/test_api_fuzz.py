"""A bounded fuzz of every documented operation, as every role: schemathesis generates valid and invalid
requests from /openapi.json; each is sent anonymously and with an exchange, auditor, bank and holder key.

It fails on any 5xx, any status code, content type or body the schema does not document, and any request
answered 4xx that changed data (a fingerprint of every table, taken before and after). The app runs as
the restricted database role, over a database that already holds a pledge book. The long run is
`bench/fuzz_bench.py`; FUZZ_EXAMPLES sets how many examples each operation gets here."""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, create_engine, text
from sqlmodel import Session

from api.app import create_app
from registry.clock import FixedClock
from registry.config import Settings
from registry.db import unit_of_work
from registry.ledger.models import PartyKind
from registry.principal import Role
from tests import factories as f

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
REPORT = os.environ.get("FUZZ_REPORT")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Tables a refused request may legitimately write: the counters that throttle wrong verification codes.
WRITTEN_ON_REFUSAL = frozenset({"rate_limit"})


@dataclass
class FuzzWorld:
    keys: dict[str, dict[str, str]]
    fingerprint: Callable[[], tuple[object, ...]]


def fingerprinter(engine: Engine) -> Callable[[], tuple[object, ...]]:
    """Rows and the newest row version of every table: any insert, update or delete moves one of them."""
    with engine.connect() as conn:
        tables = [
            t
            for t in conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
            if t not in WRITTEN_ON_REFUSAL
        ]
    query = text(
        "SELECT "
        + ", ".join(
            f"(SELECT count(*) || ':' || coalesce(max(xmin::text::bigint), 0) FROM {t})" for t in tables
        )
    )

    def take() -> tuple[object, ...]:
        with engine.connect() as conn:
            return tuple(conn.execute(query).one())

    return take


@pytest.fixture
def fuzz_world(committed_engine: Engine) -> FuzzWorld:
    with unit_of_work(committed_engine) as s:
        exchange, bank, auditor = f.the_exchange(s), f.party(s, PartyKind.BANK), f.party(s, PartyKind.AUDITOR)
        holder = f.party(s)
        account = f.account(s, holder)
        f.account(s, bank)
        f.issue(s, account.id, 100_000)
        keys = {
            "anonymous": {},
            "exchange": f.auth(f.key(s, exchange, Role.EXCHANGE, operator="fuzz")),
            "auditor": f.auth(f.key(s, auditor, Role.AUDITOR)),
            "bank": f.auth(f.key(s, bank, Role.BANK)),
            "holder": f.auth(f.key(s, holder, Role.HOLDER)),
        }
    return FuzzWorld(keys, fingerprinter(committed_engine))


def _schema() -> BaseSchema:
    """The schema as the app documents it; each test sends its requests to an app of its own."""
    unused = create_engine("postgresql+psycopg://unused@/unused")  # never connected: only the schema is read
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(_settings(), engine=unused))


def _settings() -> Settings:
    return Settings(database_url="postgresql://unused/unused", scheduler_enabled=False, key_cache_seconds=0,
                    certificate_workers=0, report_workers=0)  # fmt: skip


def _no_dns(host: str, port: int) -> list[str]:
    """The fuzz sends no DNS queries to the world: every generated host name is unknown."""
    raise OSError("no DNS in the fuzz")


SCHEMA = _schema()


def _operations() -> list[Any]:
    found = []
    for result in SCHEMA.get_all_operations():
        if not isinstance(result, Ok):
            raise result.err()  # our own schema is invalid: say so, do not skip the operation
        found.append(result.ok())
    return found


OPERATIONS = _operations()


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_every_operation_as_every_role(operation: Any, fuzz_world: FuzzWorld, app_engine: Engine) -> None:
    app = create_app(_settings(), engine=app_engine, clock=FixedClock())
    app.state.resolver = _no_dns
    tally: Counter[str] = Counter()
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def each(case: Case[Any]) -> None:
        mode = getattr(getattr(getattr(case, "meta", None), "generation", None), "mode", None)
        for role, headers in fuzz_world.keys.items():
            before = fuzz_world.fingerprint()
            response = case.call(headers=headers or None, app=app)
            tally[f"{response.status_code // 100}xx"] += 1
            tally["negative" if mode == GenerationMode.NEGATIVE else "positive"] += 1
            case.validate_response(response, checks=CHECKS)
            if 400 <= response.status_code < 500:
                changed = fuzz_world.fingerprint() != before
                assert not changed, (
                    f"{case.method} {case.formatted_path} as {role}: {response.status_code}, data changed"
                )

    try:
        each()
    finally:
        if REPORT:  # the long run (bench/fuzz_bench.py) adds up what every operation sent and got
            with open(REPORT, "a") as out:
                out.write(json.dumps({"operation": operation.label, **tally}) + "\n")


# --- crafted cursors ---------------------------------------------------------------------------------

# JSON texts a hostile client might wrap in base64 (Python takes `true` for an int, `1e309` for inf).
CRAFTED_CURSORS = ["true", "false", "[true,true]", "[true,1]", "{}", "[]", '"x"', "1e309", "-1", "[1]",
                   "[1,2,3]", "[[1,2],[3,[4]]]", "[" * 200 + "]" * 200, '{"a":{"b":[]}}', "null", "1.5",
                   "NaN", "18446744073709551616", "[-1,5]", '"' + "x" * 300 + '"']  # fmt: skip
NOT_BASE64 = ["!!!", "é", "a", "====", "dHJ1ZQ==="]
CURSOR_OPERATIONS = [op for op in OPERATIONS if any(p.name == "cursor" for p in op.query)]


@pytest.fixture
def cursor_world(fuzz_world: FuzzWorld, committed_engine: Engine) -> dict[str, Any]:
    """A value for every path parameter of a paginated operation, one that the exchange may see."""
    with unit_of_work(committed_engine) as s:
        account = f.account(s, f.party(s))
        batch = f.issue(s, account.id, 1_000)
        pledge = f.bare_pledge(s, account.id)
    return {"account_id": str(account.id), "pledge_id": str(pledge), "credit_type": "CCER",
            "serial": batch.serial_start}  # fmt: skip


def test_crafted_cursors(fuzz_world: FuzzWorld, cursor_world: dict[str, Any], app_engine: Engine) -> None:
    """Every operation that pages, with cursors of every wrong shape: a documented 4xx, never a 5xx. (One
    test for all of them: one database to build, not ten.)"""
    app = create_app(_settings(), engine=app_engine, clock=FixedClock())
    values = [base64.urlsafe_b64encode(t.encode()).decode().rstrip("=") for t in CRAFTED_CURSORS] + NOT_BASE64
    assert len(CURSOR_OPERATIONS) >= 10
    for operation in CURSOR_OPERATIONS:
        path = {p.name: cursor_world[p.name] for p in operation.path_parameters}
        for value in values:
            for role in ("exchange", "bank"):
                case = operation.Case(path_parameters=path, query={"cursor": value})
                response = case.call(headers=fuzz_world.keys[role], app=app)
                assert response.status_code < 500, f"{operation.label} cursor={value} as {role}"
                case.validate_response(response, checks=CHECKS)


# --- the console's forms -------------------------------------------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)  # anything a form can carry
_FORMS = {
    "/console/login": ("username", "password", "csrf", "next"),
    "/console/logout": ("csrf",),
    "/console/instructions/{instruction}/confirm": ("csrf",),
    "/console/instructions/{instruction}/reject": ("csrf", "reason"),
    "/console/alerts/{alert}/ack": ("csrf",),
}


def test_every_console_form_with_fuzzed_fields(client: TestClient, session: Session) -> None:
    """Each form of the console, signed in (so the CSRF token can be right) and not, with any text, any
    bytes and any id: an answer, never a 500."""
    from tests.desk import make_desk, register
    from tests.test_console import PASSWORD, hidden, user

    desk = make_desk(session)
    pending = register(client, desk, 100)["instructions"][0]["id"]
    user(session, "op-fuzz", f.the_exchange(session), Role.EXCHANGE)
    operator = TestClient(client.app, follow_redirects=False)
    token = hidden(operator.get("/console/login").text, "csrf")
    signed = operator.post(
        "/console/login", data={"username": "op-fuzz", "password": PASSWORD, "csrf": token}
    )
    assert signed.status_code == 303
    csrf = hidden(operator.get("/console/queue").text, "csrf")
    ids = {"instruction": st.one_of(st.just(pending), st.uuids().map(str), _TEXT.filter(lambda t: "/" not in t)),
           "alert": st.one_of(st.integers(-(2**70), 2**70).map(str), _TEXT.filter(lambda t: "/" not in t))}  # fmt: skip

    @given(path=st.sampled_from(sorted(_FORMS)), data=st.data(), raw=st.booleans())
    @settings(max_examples=EXAMPLES * 12, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def each(path: str, data: st.DataObject, raw: bool) -> None:
        url = path.format(**{k: quote(data.draw(v), safe="") for k, v in ids.items()})
        if raw:  # bytes a browser would never send: not UTF-8, broken percent-escapes, odd separators
            body = data.draw(st.binary(max_size=200))
            response = operator.post(url, content=body,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        else:
            csrf_field = st.one_of(st.just(csrf), _TEXT) if "logout" not in path else _TEXT  # stay signed in
            fields = {name: data.draw(csrf_field if name == "csrf" else _TEXT) for name in _FORMS[path]}
            response = operator.post(url, data=fields)
        assert response.status_code < 500, f"{path}: {response.status_code} {response.text[:300]}"
        assert "Traceback" not in response.text

    each()
