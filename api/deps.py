"""Request-scoped dependencies: one session (one transaction) per request, the clock, the actor."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from registry.clock import Clock
from registry.config import Settings


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work: committed before the response is sent, rolled back on any error."""
    engine: Engine = request.app.state.engine
    with Session(engine, expire_on_commit=False) as session, session.begin():
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
    """Who is asking, for throttling: the peer address (behind a proxy, run uvicorn with
    --forwarded-allow-ips so that it is the client's); an IPv6 client by its /64, which it can vary."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
