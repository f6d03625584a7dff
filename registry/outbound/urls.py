"""A party's URL parsed strictly, its host canonical: what is stored is what is called."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import idna

from registry.outbound.addresses import check_address
from registry.outbound.policy import MAX_URL_LENGTH, IPAddress, Refused


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
