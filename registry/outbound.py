"""Outbound HTTP to an address a party gave us (the banks' webhooks): hostile input both ways.

One module parses the URL, checks it when it is set, and sends to it, so that what was checked is what
is contacted:
- **parse** strictly: http(s) only (https unless private addresses are allowed), no credentials, no
  fragment, printable ASCII outside the host, a port in 1–65535; the host is a canonical IPv4
  dotted quad, a bracketed IPv6 address, or a DNS name that IDNA 2008 accepts. Anything a resolver could
  read as an IPv4 address in another spelling (`127.1`, `0`, `2130706433`, `0x7f000001`, `0177.0.0.1`)
  is refused, and so are names that are local by definition (`localhost`, `*.local`, the machine's own
  names, single labels that a search domain would complete);
- **resolve at every send**, and refuse unless *every* address is public (`is_public`): one private
  answer among public ones is how DNS rebinding gets in;
- **pin** the connection to the checked addresses: the name stays in the URL (Host header, TLS SNI,
  certificate check) but the socket connects only to an address checked a moment before, never to what
  a second lookup would say. No redirects are followed, no proxy from the environment is used;
- **one deadline** for the whole attempt (lookup, connect, TLS, sending, the response's head): every
  socket operation gets only what is left of it, and a watchdog shuts the sockets at the deadline, so an
  endpoint dripping a byte every few seconds is cut when the time is up;
- what the party sees of a failure is a **category** (`Refused.category`), never the error's text: the
  text would tell a bank which ports answer where (a port scanner with our address).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

import certifi
import httpcore
import idna

from registry.config import Settings

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host name, port -> the addresses it resolves to (strings as getaddrinfo gives them)
Resolver = Callable[[str, int], Sequence[str]]

# What a party may see of a failed call.
CATEGORIES: Final = ("timeout", "refused", "tls", "dns", "address_not_public", "invalid_url", "error")

MAX_URL_LENGTH = 500
# Beyond the deadline, how long the watchdog waits before it shuts the sockets: the per-operation
# budgets normally end the attempt first.
_WATCHDOG_GRACE_S = 0.25


class Refused(Exception):
    """The call was not made, or failed. `category` is what the party sees; `reason` is for a person
    setting the URL (at PUT) and for the log, never for a delivery's record."""

    def __init__(self, category: str, reason: str) -> None:
        super().__init__(f"{category}: {reason}")
        self.category = category
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class Policy:
    """How outbound calls are made: read from the settings once (`from_settings`), passed down."""

    allow_private: bool = False
    timeout_s: float = 10.0
    resolver: Resolver = system_resolver
    ssl_context: ssl.SSLContext | None = None  # None: the system's defaults with certifi's roots

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver = system_resolver) -> Policy:
        return cls(
            allow_private=settings.webhook_allow_private,
            timeout_s=settings.webhook_timeout_seconds,
            resolver=resolver,
        )


# --- the URL ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Destination:
    scheme: str
    host: str  # ASCII (A-labels), lower case, no trailing dot; an IP address without brackets
    port: int
    target: str  # path and query, as sent
    address: IPAddress | None  # the host, when it is an address

    def authority(self) -> str:
        """host[:port] as the Host header says it."""
        host = f"[{self.host}]" if isinstance(self.address, ipaddress.IPv6Address) else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def url(self) -> str:
        return f"{self.scheme}://{self.authority()}{self.target}"


_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")
_DOTTED_QUAD = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")
# A last label like these makes URL parsers and inet_aton read the whole host as an IPv4 address.
_NUMERIC_LABEL = re.compile(r"^(\d+|0x[0-9a-f]*)$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Names that are local by definition (RFC 6761, 6762, 8375, and common private zones).
_LOCAL_SUFFIXES = ("localhost", "local", "localdomain", "internal", "intranet", "lan", "home.arpa",
                   "invalid", "test", "example", "onion", "arpa")  # fmt: skip


def parse(url: str, *, allow_private: bool) -> Destination:
    """The URL as it will be called, or `Refused("invalid_url", why)`."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise Refused("invalid_url", f"an http(s) URL of at most {MAX_URL_LENGTH} characters")
    if any(c <= " " or c == "\x7f" for c in url):
        # urlsplit would silently drop tabs and newlines: what is stored must be what is called
        raise Refused("invalid_url", "no spaces or control characters in a URL")
    try:
        parts = urlsplit(url)
        port = parts.port
        hostname = parts.hostname
    except ValueError:  # "Invalid IPv6 URL", a port that is no number or out of range
        raise Refused("invalid_url", "not a URL (check the host and the port)") from None
    if parts.scheme not in ("https", "http") or not hostname:
        raise Refused("invalid_url", "an http(s) URL with a host")
    _check_parts(url, parts, port, allow_private=allow_private)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if not _PRINTABLE.match(target):
        raise Refused("invalid_url", "path and query in printable ASCII (percent-encode the rest)")
    netloc_host = parts.netloc.rpartition("@")[2]
    bracketed = netloc_host.startswith("[")
    host, address = _host(hostname, bracketed=bracketed)
    if not allow_private:
        if address is not None:
            check_address(address)
        else:
            _check_name(host)
    return Destination(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), target, address)


def _check_parts(url: str, parts: SplitResult, port: int | None, *, allow_private: bool) -> None:
    if parts.username is not None or parts.password is not None:
        raise Refused("invalid_url", "credentials do not belong in the URL; sign with the secret")
    if "#" in url:
        raise Refused("invalid_url", "a webhook URL has no #fragment")
    if not allow_private and parts.scheme != "https":
        raise Refused("invalid_url", "webhooks are delivered over https")
    if port == 0:
        raise Refused("invalid_url", "port 0 is not a port")


def _host(raw: str, *, bracketed: bool) -> tuple[str, IPAddress | None]:
    if bracketed:
        if "%" in raw:
            raise Refused("invalid_url", "an IPv6 address without a zone")
        try:
            return raw, ipaddress.IPv6Address(raw)
        except ValueError:
            raise Refused("invalid_url", "not an IPv6 address") from None
    try:
        ascii_host = idna.encode(raw, uts46=True, std3_rules=True).decode("ascii")
    except (UnicodeError, ValueError, IndexError):  # idna.IDNAError is a UnicodeError
        raise Refused("invalid_url", "not a valid host name") from None
    ascii_host = ascii_host.lower().removesuffix(".")
    labels = ascii_host.split(".")
    if not ascii_host or len(ascii_host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise Refused("invalid_url", "not a valid host name")
    for label in labels:
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (UnicodeError, ValueError, IndexError):
                raise Refused("invalid_url", "not a valid host name") from None
    if _NUMERIC_LABEL.match(labels[-1]):
        if _DOTTED_QUAD.match(ascii_host):
            return ascii_host, ipaddress.IPv4Address(ascii_host)
        raise Refused("invalid_url", "write an IPv4 address as four decimal numbers, a.b.c.d")
    return ascii_host, None


@functools.cache
def _own_names() -> frozenset[str]:
    """This machine's names (getfqdn may ask DNS: once per process)."""
    names = {socket.gethostname().lower().removesuffix(".")}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn().lower().removesuffix("."))
    return frozenset(n for n in names if n)


def _check_name(host: str) -> None:
    if "." not in host:
        raise Refused("address_not_public", "a fully qualified public host name")
    if any(host == s or host.endswith("." + s) for s in _LOCAL_SUFFIXES) or host in _own_names():
        raise Refused("address_not_public", "not a public address")


# --- addresses ---------------------------------------------------------------------------------------

# Checked explicitly, whatever this Python's `is_global` says about them (it changed across versions).
_NOT_PUBLIC_V4 = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
))  # fmt: skip
_NOT_PUBLIC_V6 = tuple(ipaddress.IPv6Network(n) for n in (
    "::/96",  # unspecified, loopback and the deprecated IPv4-compatible addresses (::127.0.0.1)
    "64:ff9b:1::/48",  # local-use NAT64
    "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))  # fmt: skip
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public(address: IPAddress) -> bool:
    """Reachable on the public internet and nothing else: no loopback, private, link-local, CGNAT,
    multicast, reserved, documentation or unspecified address, in any IPv6 wrapping of one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address.sixtofour is not None:
            return is_public(address.sixtofour)
        if address in _NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.teredo is not None or any(address in n for n in _NOT_PUBLIC_V6):
            return False
    elif any(address in n for n in _NOT_PUBLIC_V4):
        return False
    return bool(
        address.is_global
        and not (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
                 or address.is_reserved or address.is_unspecified)
    )  # fmt: skip


def check_address(address: IPAddress) -> None:
    if not is_public(address):
        raise Refused("address_not_public", "not a public address")


def _address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])


def resolve(destination: Destination, policy: Policy, *, within_s: float) -> list[IPAddress]:
    """The addresses to connect to, every one of them public unless private ones are allowed."""
    if destination.address is not None:
        found = [destination.address]
    else:
        answers = _within(within_s, policy.resolver, destination.host, destination.port)
        try:
            found = list(dict.fromkeys(_address(a) for a in answers))
        except ValueError:
            raise Refused("dns", "the name did not resolve to addresses") from None
        if not found:
            raise Refused("dns", "the name does not resolve")
    if not policy.allow_private:
        for address in found:
            check_address(address)
    return found


def _within(seconds: float, resolver: Resolver, host: str, port: int) -> Sequence[str]:
    """getaddrinfo cannot be interrupted: it runs in a daemon thread that is abandoned at the deadline
    (it ends by itself when the system resolver gives up)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["answers"] = resolver(host, port)
        except Exception as exc:  # any resolver failure is "does not resolve"
            box["error"] = exc

    thread = threading.Thread(target=run, name="resolve", daemon=True)
    thread.start()
    thread.join(max(seconds, 0.0))
    if thread.is_alive():
        raise Refused("dns", "the name did not resolve in time")
    if "error" in box:
        raise Refused("dns", "the name does not resolve")
    answers: Sequence[str] = box["answers"]
    return answers


def check(url: str, policy: Policy) -> Destination:
    """What setting a URL checks: it parses, and (unless private addresses are allowed) its name resolves,
    to public addresses only. Delivery checks all of it again, each time."""
    destination = parse(url, allow_private=policy.allow_private)
    if not policy.allow_private:
        try:
            resolve(destination, policy, within_s=policy.timeout_s)
        except Refused as refused:
            # One answer for both: whether a name exists inside our network is not the caller's business.
            raise Refused(refused.category, "the host must resolve, and only to public addresses") from None
    return destination


# --- sending -----------------------------------------------------------------------------------------


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
