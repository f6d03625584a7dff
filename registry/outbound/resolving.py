"""A name resolved within the deadline, to public addresses only; the check made when a URL is set."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from registry.outbound.addresses import address_of, check_address
from registry.outbound.policy import IPAddress, Policy, Refused, Resolver
from registry.outbound.urls import Destination, parse


def resolve(destination: Destination, policy: Policy, *, within_s: float) -> list[IPAddress]:
    """The addresses to connect to, every one of them public unless private ones are allowed."""
    if destination.address is not None:
        found = [destination.address]
    else:
        answers = _within(within_s, policy.resolver, destination.host, destination.port)
        try:
            found = list(dict.fromkeys(address_of(a) for a in answers))
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
