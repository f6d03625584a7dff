"""Sending: one deadline for the whole attempt, the connection pinned to the checked addresses, a failure
reduced to its category."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import certifi
import httpcore

from registry.outbound.policy import IPAddress, Policy, Refused
from registry.outbound.resolving import resolve
from registry.outbound.urls import Destination, parse

log = logging.getLogger(__name__)

# Beyond the deadline, how long the watchdog waits before it shuts the sockets: the per-operation
# budgets normally end the attempt first.
_WATCHDOG_GRACE_S = 0.25


@dataclass
class _Deadline:
    at: float  # time.monotonic()
    sockets: list[socket.socket] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cut: bool = False

    def left(self) -> float:
        return self.at - time.monotonic()

    def budget(self, timeout: float | None, exc: type[Exception]) -> float:
        left = self.left()
        if left <= 0:
            raise exc("the attempt's deadline passed")
        return left if timeout is None else min(timeout, left)

    def track(self, stream: httpcore.NetworkStream) -> None:
        sock = stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with self.lock:
                self.sockets.append(sock)
                if self.cut:
                    _shut(sock)

    def shut_all(self) -> None:
        with self.lock:
            self.cut = True
            for sock in self.sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv/send on it


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline
        deadline.track(inner)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.budget(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.budget(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:  # fmt: skip
        budget = self._deadline.budget(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, budget), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the checked addresses whatever host the connection asks for."""

    def __init__(self, addresses: Sequence[IPAddress], deadline: _Deadline) -> None:
        self._addresses = addresses
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:  # fmt: skip
        failure: Exception = httpcore.ConnectError("no address")
        for address in self._addresses:
            budget = self._deadline.budget(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(str(address), port, budget, local_address, socket_options)
            except httpcore.ConnectError as exc:  # the next address may answer
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:  # fmt: skip
        raise httpcore.ConnectError("no unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, max(self._deadline.left(), 0.0)))


_default_ssl: ssl.SSLContext | None = None
_ssl_lock = threading.Lock()


def _ssl_context(policy: Policy) -> ssl.SSLContext:
    global _default_ssl  # noqa: PLW0603 (loading the roots once per process)
    if policy.ssl_context is not None:
        return policy.ssl_context
    with _ssl_lock:
        if _default_ssl is None:
            _default_ssl = ssl.create_default_context(cafile=certifi.where())
        return _default_ssl


def post(url: str, body: bytes, headers: dict[str, str], policy: Policy) -> int:
    """POST `body` to `url` within `policy.timeout_s` in all; returns the status of a 2xx answer.
    Any failure — a refused URL or address, no answer in time, a non-2xx status, anything at all — is a
    `Refused` with its category; nothing else is raised."""
    deadline = _Deadline(time.monotonic() + policy.timeout_s)
    watchdog = threading.Timer(policy.timeout_s + _WATCHDOG_GRACE_S, deadline.shut_all)
    watchdog.daemon = True
    watchdog.start()
    try:
        destination = parse(url, allow_private=policy.allow_private)
        addresses = resolve(destination, policy, within_s=deadline.left())
        status = _send(destination, addresses, body, headers, policy, deadline)
    except Refused:
        raise
    except Exception as exc:
        category = "timeout" if deadline.cut or deadline.left() <= 0 else _category(exc)
        log.info("outbound call failed (%s): %s: %s", category, type(exc).__name__, exc)
        raise Refused(category, type(exc).__name__) from exc
    finally:
        watchdog.cancel()
    if not 200 <= status < 300:
        raise Refused(f"http_{status}", f"answered HTTP {status}")
    return status


def _send(destination: Destination, addresses: Sequence[IPAddress], body: bytes, headers: dict[str, str],
          policy: Policy, deadline: _Deadline) -> int:  # fmt: skip
    left = deadline.budget(None, httpcore.ConnectTimeout)
    pool = httpcore.ConnectionPool(
        ssl_context=_ssl_context(policy),
        max_connections=1,
        retries=0,
        network_backend=_PinnedBackend(addresses, deadline),
    )
    # The response's body is not read: its status is the answer, and a huge or endless body is not our
    # business. Leaving the blocks closes the connection.
    with (
        pool,
        pool.stream(
            "POST",
            destination.url(),
            headers=[("Host", destination.authority()), *headers.items(), ("Content-Length", str(len(body)))],
            content=body,
            extensions={"timeout": {"connect": left, "read": left, "write": left, "pool": left}},
        ) as response,
    ):
        return int(response.status)


def _causes(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _category(exc: Exception) -> str:
    chain = list(_causes(exc))
    if any(isinstance(e, httpcore.TimeoutException | TimeoutError) for e in chain):
        return "timeout"
    if any(isinstance(e, ssl.SSLError | ssl.CertificateError) for e in chain):
        return "tls"
    if any(isinstance(e, httpcore.ConnectError | ConnectionRefusedError) for e in chain):
        return "refused"  # refused, unreachable, reset while connecting: the same to the party
    return "error"
