"""What an outbound call may do and what a party sees when it fails: the policy read from the settings, the
refusal with its category, the system resolver."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from registry.config import WEBHOOK_TIMEOUT_SECONDS, Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host name, port -> the addresses it resolves to (strings as getaddrinfo gives them)
Resolver = Callable[[str, int], Sequence[str]]

# What a party may see of a failed call.
CATEGORIES: Final = ("timeout", "refused", "tls", "dns", "address_not_public", "invalid_url", "error")

MAX_URL_LENGTH = 500


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
    timeout_s: float = WEBHOOK_TIMEOUT_SECONDS
    resolver: Resolver = system_resolver
    ssl_context: ssl.SSLContext | None = None  # None: the system's defaults with certifi's roots

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver = system_resolver) -> Policy:
        return cls(
            allow_private=settings.webhook_allow_private,
            timeout_s=settings.webhook_timeout_seconds,
            resolver=resolver,
        )
