"""Bearer API keys -> Principal -> Actor. Roles are checked by the services; this only says who.

The key is checked before anything of the body is read. FastAPI reads and parses a request's whole body
before it solves the dependencies, so a `get_principal` dependency alone would let anyone make the
registry hold a large body in memory before its 401. Every route that needs a principal is therefore
looked after by `ApiKeyMiddleware`: the key is looked up when the request arrives, a missing or wrong one
is answered 401 at once, and the principal found is kept on the request, where `get_principal` takes
it. One lookup per request (or none, when the key cache has it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api import problems
from api.deps import clock_of
from registry.access import service as access
from registry.errors import RegistryError
from registry.principal import Actor, Principal

# How the OpenAPI document names and describes the key every /v1/ route but the public ones takes.
BEARER_SCHEME = "HTTPBearer"
BEARER = {"type": "http", "description": "An API key made by `registry keys create`.", "scheme": "bearer"}


class Unauthenticated(RegistryError):
    code = "unauthenticated"
    title = "Unauthenticated"
    message = "Sign in first."


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


def _look_up(app: Any, key: str) -> Principal | None:
    """The key's principal, in a short transaction of its own (before the request's own is opened)."""
    with app.state.unit_of_work() as session:
        return access.authenticate(session, key)


async def authenticate(request: Request) -> Principal:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthenticated("send Authorization: Bearer <api key>")
    cache: KeyCache = request.app.state.key_cache
    digest = access.digest(key)
    principal = cache.get(digest)
    if principal is None:
        principal = await run_in_threadpool(_look_up, request.app, key)
        if principal is None:
            raise Unauthenticated("the API key is not valid")
        cache.put(digest, principal)
    return principal


class ApiKeyMiddleware:
    """Looks the request's API key up before the app runs, for every path under /v1/ but the public
    routes (certificate verification): a missing or wrong key is a 401 before a byte of the body is read.
    Pure ASGI, outside FastAPI's routing, so errors are answered here through the same problem mapping."""

    def __init__(self, app: ASGIApp, *, public: Sequence[BaseRoute]) -> None:
        self.app = app
        self.public = list(public)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/") or self._public(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            principal = await authenticate(request)
        except RegistryError as refused:
            await problems.of(request, refused)(scope, receive, send)
            return
        except DBAPIError as failed:  # the database is down or busy: 503, as for any request
            await problems.database_error(request, failed)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _public(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] is not Match.NONE for route in self.public)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def needs_key(route: APIRoute) -> bool:
    return any(call is get_principal or call is get_actor for call in _calls(route.dependant))


def public_routes(routes: Iterable[BaseRoute]) -> list[BaseRoute]:
    """The /v1/ routes that take no API key, for ApiKeyMiddleware; every other /v1/ path needs one. A
    route that needs a key outside /v1/ would not be covered: refused here, at start-up."""
    public: list[BaseRoute] = []
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        if needs_key(route):
            assert route.path.startswith("/v1/"), f"{route.path} needs an API key outside /v1/"
        elif route.path.startswith("/v1/"):
            public.append(route)
    return public


def _principal_of(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):  # not under /v1/: see public_routes
        raise Unauthenticated("send Authorization: Bearer <api key>")
    return principal


# The two below take nothing but the request: ApiKeyMiddleware put the principal there, and every dependency
# of a dependency is solved again on every request (a tenth of a transfer's interpreter time went to solving
# the bearer scheme, the principal and the clock as dependencies of their own). The bearer scheme is
# declared in the OpenAPI document for each route that takes a key (api/openapi.py, with `needs_key`).
async def get_principal(request: Request) -> Principal:
    return _principal_of(request)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_actor(request: Request) -> Actor:
    return Actor(
        principal=_principal_of(request),
        at=clock_of(request).now(),
        request_id=getattr(request.state, "request_id", None),
    )


ActorDep = Annotated[Actor, Depends(get_actor)]
