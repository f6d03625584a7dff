"""Which addresses are public: the only ones a party's URL may lead to."""

from __future__ import annotations

import ipaddress

from registry.outbound.policy import IPAddress, Refused

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


def address_of(text: str) -> IPAddress:
    """An address as a resolver writes it (an IPv6 zone dropped)."""
    return ipaddress.ip_address(text.split("%", 1)[0])
