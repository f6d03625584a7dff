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

from registry.outbound.addresses import is_public
from registry.outbound.policy import (
    CATEGORIES,
    MAX_URL_LENGTH,
    IPAddress,
    Policy,
    Refused,
    Resolver,
    system_resolver,
)
from registry.outbound.resolving import check, resolve
from registry.outbound.sending import post
from registry.outbound.urls import Destination, parse

__all__ = [
    "CATEGORIES",
    "MAX_URL_LENGTH",
    "Destination",
    "IPAddress",
    "Policy",
    "Refused",
    "Resolver",
    "check",
    "is_public",
    "parse",
    "post",
    "resolve",
    "system_resolver",
]
