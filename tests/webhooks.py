"""What webhook tests share: the outbox run inside a test's session, and a listener that counts contacts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

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
