"""Limits before work, attacked as an anonymous client or a hostile bank would (issue 13).

Bodies: a 200 MB body is refused before it is read (the server answers while the client is still
sending, and its memory does not grow). Throttles: forty concurrent wrong passwords or codes from one
client get exactly the allowed number evaluated; the sixth wrong code is refused. Password hashes: at
most two at once. Proxies: a claimed X-Forwarded-For is not believed unless configured."""

from __future__ import annotations

import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api.app import create_app
from registry.certificate import service as certificates
from registry.cli import parser
from registry.cli.serve import cmd_serve, proxy_options
from registry.clock import FixedClock
from registry.config import Settings, get_settings
from registry.db import unit_of_work
from registry.errors import Busy
from registry.ledger.models import PartyKind
from registry.principal import Role
from registry.users import service as users
from tests import factories as f
from tests.conftest import Live

MB = 1 << 20
PASSWORD = "correct horse battery"


def _settings(**changes: Any) -> Settings:
    return Settings(database_url="postgresql://unused/unused", key_cache_seconds=0, scheduler_enabled=False,
                    certificate_workers=0, **changes)  # fmt: skip


@contextmanager
def serve(app: FastAPI, **options: Any) -> Iterator[str]:
    """The app on a loopback port (like the `live` fixture, with the app and uvicorn options given)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@contextmanager
def peak_rss_growth() -> Iterator[Callable[[], int]]:
    """The highest resident size of this process (server and client both live here) above where it was."""
    baseline, peak, done = rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield lambda: max(0, peak[0] - baseline)
    finally:
        done.set()
        sampler.join()


def _raw_request(url: str, head: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    conn.sendall(head.encode())
    return conn


def _answered(conn: socket.socket, within_s: float) -> bytes:
    """The response as far as it came within the time: its head and the body its Content-Length announces.

    One recv is not enough: the server may send head and body as two segments (seen in CI)."""
    deadline = time.monotonic() + within_s
    got = b""
    while True:
        head, sep, body = got.partition(b"\r\n\r\n")
        if sep:
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if length is None or len(body) >= int(length.group(1)):
                return got
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([conn], [], [], max(remaining, 0))
        try:
            chunk = conn.recv(65536) if readable else b""
        except ConnectionResetError:  # the server closed a body it refused while we were still sending
            chunk = b""
        if not chunk:
            return got
        got += chunk


# --- bodies --------------------------------------------------------------------------------------------


def test_a_200_mb_unauthenticated_body_costs_no_memory_and_gets_its_401(live: Live) -> None:
    chunk = b"x" * MB

    def body() -> Iterator[bytes]:
        for _ in range(200):
            yield chunk

    with peak_rss_growth() as growth:  # sent chunked: nothing announces the size
        answer = httpx.post(f"{live.url}/v1/pledges", content=body(), timeout=60,
                            headers={"Content-Type": "application/json"})  # fmt: skip
    assert growth() < 16 * MB, f"the server held {growth() / MB:.0f} MB of a body it had no reason to read"
    assert answer.status_code == 401 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "unauthenticated"


def test_the_401_comes_while_the_client_is_still_sending(live: Live) -> None:
    conn = _raw_request(live.url, "POST /v1/pledges HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    with conn:
        conn.sendall(b"100000\r\n" + b"x" * MB + b"\r\n")  # 1 MiB of a body that would go on for 200
        head = _answered(conn, within_s=5)
    assert head.startswith(b"HTTP/1.1 401"), head[:200]


def test_an_announced_200_mb_body_is_413_before_a_byte_is_sent(live: Live, committed_engine: Engine) -> None:
    with unit_of_work(committed_engine) as s:
        key = f.key(s, f.party(s, PartyKind.BANK), Role.BANK)
    for headers in ("", f"Authorization: Bearer {key}\r\n"):  # with a key or without: refused at once
        request = f"POST /v1/pledges HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {200 * MB}\r\n\r\n"
        with _raw_request(live.url, request) as conn:
            head = _answered(conn, within_s=5)
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
        assert b"application/problem+json" in head and b'"code":"too_large"' in head


def test_a_keyed_body_without_a_length_is_cut_off_at_the_limit(live: Live, committed_engine: Engine) -> None:
    with unit_of_work(committed_engine) as s:
        key = f.key(s, f.party(s, PartyKind.BANK), Role.BANK)
    conn = _raw_request(live.url, f"POST /v1/pledges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                                  "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    sent, head = 0, b""
    with conn:
        while not head and sent < 200 * MB:
            conn.sendall(b"40000\r\n" + b" " * (256 << 10) + b"\r\n")
            sent += 256 << 10
            head = _answered(conn, within_s=0.05)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert sent <= 16 * MB, f"{sent / MB:.1f} MB were sent before the refusal"


def test_the_price_batch_may_be_larger_than_other_bodies(client: TestClient, session: Session) -> None:
    exchange = f.auth(f.key(session, f.the_exchange(session), Role.EXCHANGE))
    big = b"[" + b" " * (2 * MB) + b"]"
    elsewhere = client.post(
        "/v1/pledges", headers={**exchange, "Content-Type": "application/json"}, content=big
    )
    assert elsewhere.status_code == 413 and elsewhere.json()["code"] == "too_large"
    prices = client.post("/v1/prices/trades", headers={**exchange, "Content-Type": "application/json"},
                         content=big)  # fmt: skip
    assert prices.status_code == 422  # read, parsed and found empty: the batch limit is 8 MiB


def test_the_limit_is_a_setting(engine: Engine) -> None:
    app = create_app(_settings(max_body_bytes=4096), engine=engine)
    with TestClient(app) as c:
        assert c.post("/v1/pledges", content=b"x" * 5000).status_code == 413
        assert c.post("/v1/pledges", content=b"x" * 4000).status_code == 401


def test_the_batch_endpoints_have_a_larger_limit_of_their_own(engine: Engine) -> None:
    """REGISTRY_MAX_BATCH_BODY_BYTES: a day's prints or settled trades may be larger than any other
    body, and are still limited."""
    app = create_app(_settings(max_body_bytes=4096, max_batch_body_bytes=16384), engine=engine)
    with TestClient(app) as c:
        for path in ("/v1/transfers/batch", "/v1/prices/trades"):
            assert c.post(path, content=b"x" * 10_000).status_code == 401, path  # within its limit: no key
            assert c.post(path, content=b"x" * 20_000).status_code == 413, path
        assert c.post("/v1/pledges", content=b"x" * 10_000).status_code == 413


def test_console_forms_are_limited_too(client: TestClient) -> None:
    answer = client.post("/console/login", data={"username": "x" * (2 * MB)})
    assert answer.status_code == 413 and answer.headers["content-type"].startswith("text/html")


# --- throttles -----------------------------------------------------------------------------------------


@pytest.fixture
def fixed_live(app_engine: Engine) -> Iterator[tuple[str, FixedClock]]:
    """A real server over the committed database, whose clock stands still: a throttle's 2-second block
    does not run out in the middle of a burst on a slow machine."""
    clock = FixedClock()
    with serve(create_app(_settings(), engine=app_engine, clock=clock)) as url:
        yield url, clock


def _burst(n: int, call: Callable[[], httpx.Response]) -> list[int]:
    with ThreadPoolExecutor(max_workers=n) as pool:
        return sorted(r.status_code for r in pool.map(lambda _: call(), range(n)))


def test_forty_concurrent_wrong_codes_are_five_evaluated(
    fixed_live: tuple[str, FixedClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = fixed_live
    evaluated: list[str] = []
    lock = threading.Lock()

    def counting_verify(session: Session, number: str, code: str) -> None:
        with lock:
            evaluated.append(code)
        time.sleep(0.05)  # the work the throttle guards takes a while: the others arrive meanwhile

    monkeypatch.setattr(certificates, "verify", counting_verify)
    with httpx.Client(timeout=30) as http:
        statuses = _burst(40, lambda: http.get(f"{url}/v1/certificates/ZY-2026-000001-01/verify",
                                               params={"code": "AAAAAAAAAAAA"}))  # fmt: skip
    assert len(evaluated) == 5, f"{len(evaluated)} codes evaluated where the policy allows 5"
    assert statuses == [404] * 5 + [429] * 35


def test_forty_concurrent_wrong_passwords_are_five_hashed(
    fixed_live: tuple[str, FixedClock], committed_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = fixed_live
    with unit_of_work(committed_engine) as s:
        users.create_user(s, username="op-one", display_name="Op", party=f.the_exchange(s), role=Role.EXCHANGE,
                          password=PASSWORD, now=f.AT)  # fmt: skip
    hashed: list[str] = []
    lock = threading.Lock()
    real = users._hasher

    class CountingHasher:
        def verify(self, stored: str, password: str) -> bool:
            with lock:
                hashed.append(password)
            return bool(real.verify(stored, password))

        def hash(self, password: str) -> str:
            return str(real.hash(password))

        def check_needs_rehash(self, stored: str) -> bool:
            return bool(real.check_needs_rehash(stored))

    monkeypatch.setattr(users, "_hasher", CountingHasher())
    with httpx.Client(timeout=30) as http:
        page = http.get(f"{url}/console/login")
        token = page.text.split('name="csrf" value="')[1].split('"')[0]
        form = {"username": "op-one", "password": "guess", "csrf": token}
        statuses = _burst(40, lambda: http.post(f"{url}/console/login", data=form))
    assert len(hashed) == 5, f"{len(hashed)} passwords hashed where the policy allows 5"
    assert statuses == [401] * 5 + [429] * 35


def test_the_sixth_wrong_code_is_refused(client: TestClient, clock: FixedClock) -> None:
    def verify() -> int:
        answer = client.get("/v1/certificates/ZY-2026-000001-01/verify", params={"code": "AAAAAAAAAAAA"})
        return int(answer.status_code)

    assert [verify() for _ in range(6)] == [404] * 5 + [429]
    clock.advance(timedelta(seconds=3))  # the block after the fifth was 2 s
    assert verify() == 404  # one more may be tried; wrong, it blocks for 4 s
    assert verify() == 429


def test_a_username_is_throttled_whatever_address_guesses(client: TestClient, session: Session) -> None:
    users.create_user(session, username="op-one", display_name="Op", party=f.the_exchange(session),
                      role=Role.EXCHANGE, password=PASSWORD, now=f.AT)  # fmt: skip

    def attempt(n: int, password: str) -> int:
        person = TestClient(client.app, client=(f"203.0.113.{n}", 4000), follow_redirects=False)
        token = person.get("/console/login").text.split('name="csrf" value="')[1].split('"')[0]
        form = {"username": "OP-One ", "password": password, "csrf": token}
        return int(person.post("/console/login", data=form).status_code)

    limit = users.USER_SIGN_IN_LIMIT.free_failures
    assert [attempt(n, "guess") for n in range(limit)] == [401] * limit  # each address its first try
    assert attempt(limit, PASSWORD) == 429  # the user is blocked, from a fresh address too


def test_at_most_two_password_hashes_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    running, peak = [0], [0]
    lock = threading.Lock()

    class SlowHasher:
        def verify(self, stored: str, password: str) -> bool:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.5)  # long enough that a late thread cannot slip in after a turn is free
            with lock:
                running[0] -= 1
            return False

    monkeypatch.setattr(users, "_hasher", SlowHasher())
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda _: users._verify("$argon2id$x", "guess"), range(6)))
    assert peak[0] == users.HASHES_AT_ONCE == 2

    monkeypatch.setattr(users, "HASH_WAIT_S", 0.05)  # a turn that does not come soon: busy, not queued
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda _: _busy_or(lambda: users._verify("$argon2id$x", "guess")), range(4)))
    assert outcomes.count("busy") == 2 and peak[0] == 2


def test_a_sign_in_without_a_hash_turn_is_busy_and_costs_no_attempt(
    fixed_live: tuple[str, FixedClock], committed_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = fixed_live  # real commits: the attempt is counted and given back in transactions of their own
    with unit_of_work(committed_engine) as s:
        users.create_user(s, username="op-one", display_name="Op", party=f.the_exchange(s), role=Role.EXCHANGE,
                          password=PASSWORD, now=f.AT)  # fmt: skip
    monkeypatch.setattr(users, "HASH_WAIT_S", 0.01)
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        page = http.get(f"{url}/console/login")
        token = page.text.split('name="csrf" value="')[1].split('"')[0]
        form = {"username": "op-one", "password": PASSWORD, "csrf": token}
        for _ in range(users.HASHES_AT_ONCE):
            users._hash_turns.acquire()  # every turn taken, as by two long sign-ins
        try:
            busy = [http.post(f"{url}/console/login", data=form) for _ in range(8)]
        finally:
            for _ in range(users.HASHES_AT_ONCE):
                users._hash_turns.release()
        assert {b.status_code for b in busy} == {503} and "text/html" in busy[0].headers["content-type"]
        assert http.post(f"{url}/console/login", data=form).status_code == 303  # 8 busy: no attempt used


def _busy_or(call: Callable[[], object]) -> object:
    try:
        return call()
    except Busy:
        return "busy"


# --- proxies -------------------------------------------------------------------------------------------


def test_registry_serve_believes_no_proxy_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    for name in (
        "DATABASE_URL",
        "REGISTRY_APP_DATABASE_URL",
        "REGISTRY_HOST",
        "REGISTRY_PORT",
        "REGISTRY_LOG_FORMAT",
    ):
        monkeypatch.delenv(name, raising=False)  # cmd_serve sets them for its workers: undone after the test
    root = logging.getLogger()  # cmd_serve sets up its JSON logs: undone after the test too
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    args = parser().parse_args(["serve"])
    cmd_serve(args, _settings(), url="postgresql+psycopg://u@h/d")
    assert seen["proxy_headers"] is False and seen["forwarded_allow_ips"] == ""
    cmd_serve(args, _settings(trusted_proxies="10.0.0.5,10.1.0.0/16"), url="postgresql+psycopg://u@h/d")
    assert seen["proxy_headers"] is True and seen["forwarded_allow_ips"] == "10.0.0.5,10.1.0.0/16"
    get_settings.cache_clear()  # it was read from the environment cmd_serve set


def test_a_claimed_forwarded_address_is_not_a_new_client(app_engine: Engine) -> None:
    """Served as `registry serve` serves: each guess claiming another X-Forwarded-For is still the peer."""
    app = create_app(_settings(), engine=app_engine, clock=FixedClock())
    with serve(app, **proxy_options(_settings())) as url, httpx.Client(timeout=10) as http:
        statuses = [
            http.get(f"{url}/v1/certificates/ZY-2026-000001-01/verify", params={"code": "AAAAAAAAAAAA"},
                     headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
            for n in range(6)
        ]  # fmt: skip
    assert statuses == [404] * 5 + [429]
