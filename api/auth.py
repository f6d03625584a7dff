"""Bearer API keys -> Principal -> Actor. Roles are checked by the services; this only says who."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import ClockDep, SessionDep, SettingsDep
from registry.access import service as access
from registry.errors import RegistryError
from registry.principal import Actor, Principal

_bearer = HTTPBearer(auto_error=False, description="An API key made by `registry keys create`.")


class Unauthenticated(RegistryError):
    code = "unauthenticated"
    title = "Unauthenticated"


class KeyCache:
    """digest -> (principal, expiry). Saves a query per request; bounded in size and age."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[Principal, float]] = {}

    def get(self, digest: bytes) -> Principal | None:
        hit = self._entries.get(digest)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, digest: bytes, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[digest] = (principal, time.monotonic() + self.ttl_s)


def get_principal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("send Authorization: Bearer <api key>")
    key = credentials.credentials
    cache: KeyCache = request.app.state.key_cache
    digest = access.digest(key)
    principal = cache.get(digest)
    if principal is None:
        principal = access.authenticate(session, key)
        if principal is None:
            raise Unauthenticated("the API key is not valid")
        cache.put(digest, principal)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_actor(request: Request, principal: PrincipalDep, clock: ClockDep) -> Actor:
    return Actor(principal=principal, at=clock.now(), request_id=getattr(request.state, "request_id", None))


ActorDep = Annotated[Actor, Depends(get_actor)]
