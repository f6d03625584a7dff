"""What webhook tests share: the outbox run inside a test's session, and a listener that counts contacts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from uuid import UUID

from sqlalchemy import text
from sqlmodel import Session

from registry.alert import delivery


def in_session(session: Session) -> delivery.Transaction:
    """The outbox's units of work as savepoints of the test's session (rolled back with it). The
    dispatcher's senders record from their threads: one at a time."""
    lock = threading.Lock()

    @contextmanager
    def transaction() -> Iterator[Session]:
        with lock, session.begin_nested():
            yield session

    def factory() -> AbstractContextManager[Session]:
        return transaction()

    return factory


class Listener:
    """A TCP listener on loopback that counts the connections it accepts and closes them at once: the
    service a hostile URL would reach. Nothing may ever connect to it."""

    def __init__(self, host: str = "127.0.0.1", family: socket.AddressFamily = socket.AF_INET) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def poison(session: Session, party_id: UUID, url: str) -> None:
    """A webhook URL written straight into the database, as by someone past an old version's checks."""
    session.execute(
        text("INSERT INTO webhook (party_id, url, secret, updated_at) VALUES (:p, :u, :s, now()) "
             "ON CONFLICT (party_id) DO UPDATE SET url = EXCLUDED.url"),
        {"p": party_id, "u": url, "s": "s3cret-for-hmac-0001"},
    )  # fmt: skip


def queue(session: Session, party_id: UUID, pledge_id: UUID, *, at: datetime, count: int = 1) -> list[int]:
    """`count` alerts for the bank and their deliveries, due at `at`."""
    ids: list[int] = []
    for _ in range(count):
        alert_id = session.execute(
            text("INSERT INTO alert (pledge_id, pledgee_party_id, kind, trigger, raised_at) "
                 "VALUES (:pl, :p, 'price_stale', gen_random_uuid()::text, :at) RETURNING id"),
            {"pl": pledge_id, "p": party_id, "at": at},
        ).scalar_one()  # fmt: skip
        ids.append(
            session.execute(
                text("INSERT INTO webhook_delivery (alert_id, party_id, event, payload, next_attempt_at, created_at) "
                     "VALUES (:a, :p, 'alert.raised', jsonb_build_object('alert_id', :a), :at, :at) RETURNING id"),
                {"a": alert_id, "p": party_id, "at": at},
            ).scalar_one()
        )  # fmt: skip
    return ids


def outcome(session: Session, delivery_id: int) -> tuple[str, int, str | None]:
    row = session.execute(
        text("SELECT status, attempts, last_error FROM webhook_delivery WHERE id = :id"), {"id": delivery_id}
    ).one()
    return row.status, row.attempts, row.last_error


class Receiver:
    """A bank's endpoint on loopback: records each request's Host header and body, answers `status`
    (with `location` as a redirect target when set); `drip_s` > 0 answers one byte every `drip_s` seconds."""

    def __init__(self, status: int = 204, *, location: str | None = None, drip_s: float = 0.0) -> None:
        self.status, self.location, self.drip_s = status, location, drip_s
        self.received: list[tuple[str, bytes]] = []
        self.accepted = 0
        self.release = threading.Event()  # ends a drip early
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                owner.accepted += 1
                super().setup()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.received.append((self.headers.get("Host", ""), body))
                if owner.drip_s:
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                        if owner.release.wait(owner.drip_s):
                            return
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:
                            return
                    return
                self.send_response(owner.status)
                if owner.location:
                    self.send_header("Location", owner.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/registry-alerts"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
