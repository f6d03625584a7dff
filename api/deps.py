"""Request-scoped dependencies: one session (one transaction) per request, the clock, the actor."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from registry.clock import Clock
from registry.config import Settings


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work: committed before the response is sent, rolled back on any error. Opened by
    `app.state.unit_of_work` (registry.db.unit_of_work on the app's engine), which the API-key lookup
    uses too; tests replace it with savepoints of their rolled-back session."""
    with request.app.state.unit_of_work() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Dependencies that do no I/O are `async def`: FastAPI then calls them on the event loop instead of
# hopping to a worker thread for each one.
async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


ClockDep = Annotated[Clock, Depends(get_clock)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def client_of(request: Request) -> str:
    """Who is asking, for throttling: the peer address (the client's behind a proxy only when
    REGISTRY_TRUSTED_PROXIES names it: `registry serve` believes no X-Forwarded-For otherwise); an IPv6
    client by its /64, which it can vary."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
