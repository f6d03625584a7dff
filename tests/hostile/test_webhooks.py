"""A bank's webhook URL is hostile input: refused at PUT in every spelling of a private address, refused
again at every delivery (the URL may have been written before these checks, or its name may now
resolve elsewhere), sent only to the address checked, within one deadline, and what the bank learns of
a failure is a category. A listener on loopback stands for the registry's own services: nothing ever
connects to it."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from registry import outbound
from registry.alert import delivery
from registry.clock import FixedClock
from registry.config import Settings
from registry.ledger.models import PartyKind
from registry.principal import Role
from tests import factories as f
from tests.webhooks import Listener, Receiver, in_session, outcome, poison, queue

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
PUBLIC = "93.184.216.34"  # an address on the public internet (never contacted: see the resolvers)
SECRET = "s3cret-for-hmac-0001"


@pytest.fixture
def listener() -> Iterator[Listener]:
    served = Listener()
    yield served
    served.close()


def fake_dns(table: dict[str, list[str]]) -> outbound.Resolver:
    """The outside world's DNS, as a table; a name not in it does not resolve."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


def hostile_urls(port: int) -> list[str]:
    """Every spelling of "this machine" we know of, on the listener's port."""
    return [
        f"https://127.0.0.1:{port}/a", f"https://127.1:{port}/a", f"https://0:{port}/a",
        f"https://2130706433:{port}/a", f"https://0x7f000001:{port}/a", f"https://0177.0.0.1:{port}/a",
        f"https://0x7f.0.0.1:{port}/a", f"https://127.000.000.001:{port}/a", f"https://localhost:{port}/a",
        f"https://localhost.:{port}/a", f"https://LOCALHOST:{port}/a", f"https://foo.localhost:{port}/a",
        f"https://{socket.gethostname()}:{port}/a", f"https://{socket.gethostname()}.:{port}/a",
        f"https://127.0.0.1.nip.io:{port}/a", f"https://rebound.bank-a.example.com:{port}/a",
        f"https://mixed.bank-a.example.com:{port}/a", f"https://[::1]:{port}/a",
        f"https://[::ffff:127.0.0.1]:{port}/a", f"https://[::ffff:7f00:1]:{port}/a",
        f"https://[::127.0.0.1]:{port}/a", f"https://[2002:7f00:1::]:{port}/a",
        f"https://[64:ff9b::7f00:1]:{port}/a", f"https://[fe80::1]:{port}/a", f"https://10.0.0.1:{port}/a",
        f"https://172.16.0.1:{port}/a", f"https://192.168.1.1:{port}/a", f"https://169.254.169.254:{port}/a",
        f"https://100.64.0.1:{port}/a", f"https://0.0.0.0:{port}/a", f"https://224.0.0.1:{port}/a",
        f"https://255.255.255.255:{port}/a", f"https://[fd00::1]:{port}/a", f"https://[::]:{port}/a",
        f"http://127.0.0.1:{port}/a", f"https://u:p@127.0.0.1:{port}/a",
    ]  # fmt: skip


# What the names above resolve to in the outside world (nip.io-style names answer with the address in
# them; `mixed` gives one public and one loopback answer, as a rebinding attacker would).
DNS = fake_dns({
    "127.0.0.1.nip.io": ["127.0.0.1"],
    "rebound.bank-a.example.com": ["127.0.0.1"],
    "mixed.bank-a.example.com": [PUBLIC, "127.0.0.1"],
    "bank-a.example.com": [PUBLIC],
})  # fmt: skip

GARBAGE = [
    "https://☃.invalid/alerts", "https://xn--/x", "https://[::1/", "https://[::1]x/", "https://a..b.example/x",
    "https://bank.example.com:99999/x", "https://bank.example.com:0/x", "https://bank.example.com:x/",
    "https://bank.example.com/a b", "https://bank.example.com/\u202ex", "https://bank.example.com/#frag",
    "https://bank.example.com\n.evil.example/x", "https://-bank.example.com/", "https://bank_a.example.com/",
    "ftp://bank.example.com/", "https:///x", "https://[fe80::1%25eth0]/", "https://xn--a.example.com/",
    "javascript:alert(1)", "https://" + "a" * 64 + ".example.com/", "https://bank.example.com/" + "x" * 500,
]  # fmt: skip


class TestSettingTheUrl:
    def bank(self, client: TestClient, session: Session) -> dict[str, str]:
        client.app.state.resolver = DNS  # type: ignore[attr-defined]
        return f.auth(f.key(session, f.party(session, PartyKind.BANK), Role.BANK))

    def test_every_spelling_of_a_private_address_is_refused(
        self, client: TestClient, session: Session, listener: Listener
    ) -> None:
        bank = self.bank(client, session)
        for url in hostile_urls(listener.port):
            put = client.put("/v1/webhook", headers=bank, json={"url": url, "secret": SECRET})
            assert put.status_code == 422, (url, put.text)
            problem = put.json()
            assert problem["code"] == "validation_error" and problem["field"] == "url", url
            assert put.headers["content-type"] == "application/problem+json"
        assert client.get("/v1/webhook", headers=bank).status_code == 404  # nothing was stored
        assert listener.accepted == 0

    @pytest.mark.parametrize("url", GARBAGE)
    def test_garbage_is_a_clean_422(self, client: TestClient, session: Session, url: str) -> None:
        put = client.put(
            "/v1/webhook", headers=self.bank(client, session), json={"url": url, "secret": SECRET}
        )
        assert put.status_code == 422, put.text
        assert put.json()["code"] == "validation_error"

    def test_a_public_https_url_is_taken_and_a_name_that_does_not_resolve_is_not(
        self, client: TestClient, session: Session
    ) -> None:
        bank = self.bank(client, session)
        url = "https://bank-a.example.com/registry-alerts?v=1"
        put = client.put("/v1/webhook", headers=bank, json={"url": url, "secret": SECRET})
        assert put.status_code == 200 and put.json()["url"] == url
        unknown = client.put(
            "/v1/webhook", headers=bank, json={"url": "https://nx.example.com/", "secret": SECRET}
        )
        assert unknown.status_code == 422
        # the same words whether the name is missing or private: which names exist inside is not told
        private = client.put("/v1/webhook", headers=bank,
                             json={"url": "https://rebound.bank-a.example.com/", "secret": SECRET})  # fmt: skip
        assert private.json()["detail"] == unknown.json()["detail"]


class TestAtDelivery:
    """URLs written into the database directly (past an old version's checks), or names that resolve
    elsewhere since they were set: each delivery checks again, and the listener is never contacted."""

    def test_no_hostile_url_reaches_the_listener(self, session: Session, listener: Listener) -> None:
        pledge_id = f.bare_pledge(session, f.account(session).id)
        ids: dict[str, int] = {}
        for url in [*hostile_urls(listener.port), *GARBAGE]:
            bank = f.party(session, PartyKind.BANK)
            poison(session, bank.id, url)
            ids[url] = queue(session, bank.id, pledge_id, at=NOW)[0]
        v6 = _listener_v6()
        try:
            if v6 is not None:
                for url in (f"https://[::1]:{v6.port}/a", f"https://localhost:{v6.port}/a"):
                    bank = f.party(session, PartyKind.BANK)
                    poison(session, bank.id, url)
                    ids[url] = queue(session, bank.id, pledge_id, at=NOW)[0]
            policy = delivery.Policy(
                outbound.Policy(allow_private=False, timeout_s=2, resolver=DNS), concurrency=8
            )
            tally = delivery.deliver_due(in_session(session), FixedClock(NOW), policy)
            assert (tally.delivered, tally.failed) == (0, len(ids))
            assert listener.accepted == 0 and (v6 is None or v6.accepted == 0)
        finally:
            if v6 is not None:
                v6.close()
        seen = {url: outcome(session, i) for url, i in ids.items()}
        assert all(status == "pending" and attempts == 1 for status, attempts, _ in seen.values())
        assert {error for _, _, error in seen.values()} == {"invalid_url", "address_not_public"}

    def test_a_name_that_now_resolves_to_loopback_is_refused(
        self, client: TestClient, session: Session, listener: Listener
    ) -> None:
        table = {"bank-a.example.com": [PUBLIC]}
        client.app.state.resolver = fake_dns(table)  # type: ignore[attr-defined]
        bank = f.party(session, PartyKind.BANK)
        put = client.put("/v1/webhook", headers=f.auth(f.key(session, bank, Role.BANK)),
                         json={"url": f"https://bank-a.example.com:{listener.port}/x", "secret": SECRET})  # fmt: skip
        assert put.status_code == 200
        table["bank-a.example.com"] = ["127.0.0.1"]  # rebinding: the name answers differently now
        (sent,) = queue(session, bank.id, f.bare_pledge(session, f.account(session).id), at=NOW)
        policy = delivery.Policy(outbound.Policy(timeout_s=2, resolver=fake_dns(table)))
        delivery.deliver_due(in_session(session), FixedClock(NOW), policy)
        assert outcome(session, sent) == ("pending", 1, "address_not_public")
        assert listener.accepted == 0


class TestSending:
    def policy(self, **overrides: Any) -> delivery.Policy:
        return delivery.Policy(outbound.Policy(**{"allow_private": True, "timeout_s": 5, **overrides}))

    def test_the_connection_goes_to_the_address_checked_with_the_name_as_host(self, session: Session) -> None:
        receiver = Receiver()
        lookups: list[str] = []

        def dns(host: str, port: int) -> list[str]:
            lookups.append(host)
            return ["127.0.0.1"]

        try:
            bank = f.party(session, PartyKind.BANK)
            poison(session, bank.id, f"http://bank-a.example.com:{receiver.port}/hook")
            queue(session, bank.id, f.bare_pledge(session, f.account(session).id), at=NOW, count=2)
            tally = delivery.deliver_due(in_session(session), FixedClock(NOW), self.policy(resolver=dns))
        finally:
            receiver.close()
        assert tally.delivered == 2
        assert [host for host, _ in receiver.received] == [f"bank-a.example.com:{receiver.port}"] * 2
        assert lookups == ["bank-a.example.com"] * 2  # resolved at each delivery, once, and that used

    def test_a_redirect_is_not_followed(self, session: Session, listener: Listener) -> None:
        receiver = Receiver(302, location=f"http://127.0.0.1:{listener.port}/elsewhere")
        try:
            bank = f.party(session, PartyKind.BANK)
            poison(session, bank.id, receiver.url)
            (sent,) = queue(session, bank.id, f.bare_pledge(session, f.account(session).id), at=NOW)
            delivery.deliver_due(in_session(session), FixedClock(NOW), self.policy())
        finally:
            receiver.close()
        assert outcome(session, sent) == ("pending", 1, "http_302") and listener.accepted == 0

    def test_a_dripping_endpoint_is_cut_at_the_deadline(self, session: Session) -> None:
        receiver = Receiver(drip_s=0.5)  # a byte every half second: no single read ever times out
        try:
            bank = f.party(session, PartyKind.BANK)
            poison(session, bank.id, receiver.url)
            (sent,) = queue(session, bank.id, f.bare_pledge(session, f.account(session).id), at=NOW)
            began = time.monotonic()
            delivery.deliver_due(in_session(session), FixedClock(NOW), self.policy(timeout_s=2))
            took = time.monotonic() - began
        finally:
            receiver.close()
        assert outcome(session, sent) == ("pending", 1, "timeout")
        assert took < 6  # the deadline is 2 s; the whole response would take 19 s

    def test_the_bank_sees_a_category_never_the_error(self, client: TestClient, session: Session) -> None:
        receiver, closed = Receiver(500), _closed_port()
        plain = Receiver()  # https to a plain-http port: a TLS failure
        cases = {
            receiver.url: "http_500",
            f"http://127.0.0.1:{closed}/x": "refused",
            f"https://127.0.0.1:{plain.port}/x": "tls",
            "http://nx.bank-a.example.com/x": "dns",
            "https://☃.invalid/alerts": "invalid_url",
        }
        banks = {}
        try:
            pledge_id = f.bare_pledge(session, f.account(session).id)
            for url in cases:
                bank = f.party(session, PartyKind.BANK)
                poison(session, bank.id, url)
                queue(session, bank.id, pledge_id, at=NOW)
                banks[url] = bank
            delivery.deliver_due(in_session(session), FixedClock(NOW), self.policy(resolver=DNS))
        finally:
            receiver.close()
            plain.close()
        for url, category in cases.items():
            key = f.auth(f.key(session, banks[url], Role.BANK))
            (shown,) = client.get("/v1/webhook/deliveries", headers=key).json()["items"]
            assert shown["last_error"] == category, url

    def test_tls_is_checked_against_the_name_sent_as_sni(self, session: Session, tmp_path: Path) -> None:
        if shutil.which("openssl") is None:
            pytest.skip("openssl is needed to make a certificate")
        server = _TlsReceiver(tmp_path, "bank-a.example.com")
        try:
            trusted = ssl.create_default_context(cafile=str(server.cert))
            dns = fake_dns({"bank-a.example.com": ["127.0.0.1"], "other.example.com": ["127.0.0.1"]})
            pledge_id = f.bare_pledge(session, f.account(session).id)
            good, bad = f.party(session, PartyKind.BANK), f.party(session, PartyKind.BANK)
            poison(session, good.id, f"https://bank-a.example.com:{server.port}/x")
            poison(
                session, bad.id, f"https://other.example.com:{server.port}/x"
            )  # the certificate is not its
            (ok,) = queue(session, good.id, pledge_id, at=NOW)
            (refused,) = queue(session, bad.id, pledge_id, at=NOW)
            delivery.deliver_due(in_session(session), FixedClock(NOW),
                                 self.policy(resolver=dns, ssl_context=trusted))  # fmt: skip
        finally:
            server.close()
        assert outcome(session, ok) == ("delivered", 1, None)
        assert outcome(session, refused) == ("pending", 1, "tls")
        assert "bank-a.example.com" in server.sni and "other.example.com" in server.sni

    def test_an_exception_of_any_kind_costs_only_its_own_delivery(
        self, session: Session, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        receiver = Receiver()
        real_post = outbound.post

        def buggy(url: str, *args: Any, **kwargs: Any) -> int:
            if "bank-a" in url:
                raise ZeroDivisionError("a bug, not an HTTP error")
            return real_post(url, *args, **kwargs)

        monkeypatch.setattr(outbound, "post", buggy)
        try:
            pledge_id = f.bare_pledge(session, f.account(session).id)
            a, b = f.party(session, PartyKind.BANK), f.party(session, PartyKind.BANK)
            poison(session, a.id, "https://bank-a.example.com/x")
            poison(session, b.id, receiver.url)
            (first,) = queue(session, a.id, pledge_id, at=NOW)
            (second,) = queue(session, b.id, pledge_id, at=NOW)
            delivery.deliver_due(in_session(session), FixedClock(NOW), self.policy())
        finally:
            receiver.close()
        assert outcome(session, first) == ("pending", 1, "error")
        assert outcome(session, second) == ("delivered", 1, None)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once this socket is closed


def _listener_v6() -> Listener | None:
    try:
        return Listener("::1", socket.AF_INET6)
    except OSError:
        return None


class _TlsReceiver:
    """An https endpoint with a self-signed certificate for one name; records the SNI it is asked for."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.cert, key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(self.cert), "-days", "2", "-subj", f"/CN={name}",
                        "-addext", f"subjectAltName=DNS:{name}"], check=True, capture_output=True)  # fmt: skip
        self.sni: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(key))

        def record_sni(
            sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext
        ) -> None:
            self.sni.append(server_name)

        context.sni_callback = record_sni

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                sock, address = super().get_request()
                try:
                    return context.wrap_socket(sock, server_side=True), address
                except (ssl.SSLError, OSError):
                    sock.close()
                    raise

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_settings_set_the_deadline_and_the_senders(session: Session) -> None:
    settings = Settings(database_url="postgresql://unused/unused", webhook_allow_private=True,
                        webhook_timeout_seconds=1, webhook_concurrency=2)  # fmt: skip
    drips = [Receiver(drip_s=0.4) for _ in range(3)]
    try:
        pledge_id = f.bare_pledge(session, f.account(session).id)
        sent = []
        for drip in drips:
            bank = f.party(session, PartyKind.BANK)
            poison(session, bank.id, drip.url)
            sent += queue(session, bank.id, pledge_id, at=NOW)
        dispatcher = delivery.Dispatcher(
            in_session(session), FixedClock(NOW), delivery.Policy.from_settings(settings)
        )
        began = time.monotonic()
        assert dispatcher.tick() == 2  # two senders
        assert dispatcher.wait(timeout=15)  # the third goes when one is free
        took = time.monotonic() - began
        dispatcher.close()
    finally:
        for drip in drips:
            drip.close()
    assert [outcome(session, d) for d in sent] == [("pending", 1, "timeout")] * 3
    assert took < 8  # two rounds of the 1 s deadline; each answer would take 15 s
