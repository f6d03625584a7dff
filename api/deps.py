"""Request-scoped dependencies: one session (one transaction) per request, the clock, the actor."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session

from registry.clock import Clock
from registry.config import Settings

_UNIT = "registry.unit"  # Session.info: the transaction this request's unit of work began


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One unit of work: committed before the response is sent, rolled back on any error. Opened by
    `app.state.unit_of_work` (registry.db.unit_of_work on the app's engine), which the API-key lookup
    uses too; tests replace it with savepoints of their rolled-back session.

    `async`, so that opening it costs no hop to a worker thread (a session takes its connection at its first
    statement, in the endpoint's thread). An endpoint that ends the unit itself (`finish`, as every
    state-changing POST does through `respond`) leaves nothing here to wait for: the request then runs in
    one worker thread, not three. Only a unit still open, or an error's rollback, is ended in a thread."""
    unit = request.app.state.unit_of_work()
    session: Session = unit.__enter__()
    session.info[_UNIT] = session.get_nested_transaction() or session.get_transaction()
    try:
        yield session
    except BaseException:
        # Dropped on every path: held in the session's own `info`, the transaction (which refers to its
        # session) would make each refused request's session a cycle left to the garbage collector.
        session.info.pop(_UNIT, None)
        await run_in_threadpool(unit.__exit__, *sys.exc_info())
        raise
    transaction = session.info.pop(_UNIT, None)
    if transaction is not None and transaction.is_active:
        await run_in_threadpool(unit.__exit__, None, None, None)
    else:
        unit.__exit__(None, None, None)  # already committed: closing does no I/O


def finish(session: Session) -> None:
    """Commit the request's unit of work now, in the caller's (worker) thread. A failure (a deferred
    constraint) raises here, before any response is made."""
    transaction = session.info.pop(_UNIT, None)
    if transaction is not None and transaction.is_active:
        transaction.commit()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Dependencies that do no I/O are `async def`: FastAPI then calls them on the event loop instead of
# hopping to a worker thread for each one.
def clock_of(request: Request) -> Clock:
    """The app's clock (tests give the app a fixed one)."""
    clock: Clock = request.app.state.clock
    return clock


async def get_clock(request: Request) -> Clock:
    return clock_of(request)


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
