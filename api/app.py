"""The FastAPI application: wiring only. `create_app()` is what uvicorn serves."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import heap, openapi, problems, together
from api.auth import ApiKeyMiddleware, KeyCache, public_routes
from api.console import routes as console
from api.limits import BodyLimitMiddleware
from api.observe import ObserveMiddleware
from api.offline import OfflineDocsMiddleware
from api.operations import router as operations
from api.routers import audit, certificates, ledger, pledges, reference, reports, valuation
from registry import metrics, outbound
from registry.certificate.renderer import Renderer
from registry.clock import Clock, SystemClock
from registry.config import Settings, get_settings
from registry.db import app_database_url, make_engine, unit_of_work
from registry.report.renderer import ReportRenderer

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")

DESCRIPTION = """
The pledge registry for environmental-rights credits (CCER, CDCER, and any credit type added as data).

Authenticate with `Authorization: Bearer <api key>`. Errors are RFC 9457 `application/problem+json`
with a stable `code`. Every state-changing POST accepts `Idempotency-Key`.
"""


class RequestIdMiddleware:
    """Takes the client's X-Request-ID (or makes one), puts it on request.state and echoes it back; and
    marks every response `X-Content-Type-Options: nosniff`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers.append((b"x-request-id", request_id.encode()))
                if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                    headers.append(
                        (b"x-content-type-options", b"nosniff")
                    )  # no response is sniffed as another type
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(
    settings: Settings | None = None, *, engine: Engine | None = None, clock: Clock | None = None
) -> FastAPI:
    settings = settings or get_settings()
    owns_engine = engine is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jobs = None
        if settings.scheduler_enabled:
            from registry import scheduler

            jobs = scheduler.build(app.state.engine, app.state.clock, settings, app.state.renderer)
            jobs.start()
        heap.freeze_startup_objects()
        yield
        if jobs is not None:
            jobs.shutdown(wait=False)
        app.state.render_queue.shutdown(wait=False, cancel_futures=True)
        app.state.renderer.close()
        app.state.report_renderer.close()
        if owns_engine:
            app.state.engine.dispose()
        metrics.process_exited()

    # Swagger UI (/docs) and ReDoc (/redoc) from the assets fastapi-offline ships, served by the registry
    # itself: the API reference works on a network with no way out. No validator badge (it is an image
    # from validator.swagger.io).
    app = FastAPIOffline(
        title="Pledge Registry",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
        swagger_ui_parameters={"validatorUrl": None},
    )
    _equip(app, settings, engine or make_engine(app_database_url(settings), pool_size=settings.db_pool_size),
           clock or SystemClock())  # fmt: skip
    problems.install(app)
    openapi.install(app)  # the document clients are generated from: problem+json errors, tags, ids
    routers = [m.router for m in (reference, ledger, pledges, certificates, valuation, reports, audit)]
    _guard(app, settings, public=public_routes(r for router in routers for r in router.routes))
    for router in [*routers, *console.routers, operations]:
        # The routes themselves, not the routers: FastAPI walks an included router's routes again for every
        # request it matches (its routes' version, then each candidate), ~8 % of a transfer's CPU under load.
        # Each route already carries its router's prefix, tags and responses.
        app.router.routes.extend(router.routes)
    app.router.routes[:] = fixed_first(app.router.routes)
    return app


def fixed_first(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The routes with fixed paths (`/v1/transfers`) ahead of the others wherever no route before them could
    take their path, so that the router, which tries them in turn, reaches the busiest ones in a few tries
    rather than twenty; every path still goes to the route it went to (tests/test_routes.py)."""
    fixed: list[BaseRoute] = []
    rest: list[BaseRoute] = []
    for n, route in enumerate(routes):
        path = getattr(route, "path", "")
        shadowed = any(
            (pattern := getattr(before, "path_regex", None)) is not None and pattern.match(path)
            for before in routes[:n]
        )
        (fixed if isinstance(route, Route) and "{" not in path and not shadowed else rest).append(route)
    return [*fixed, *rest]


def _equip(app: FastAPI, settings: Settings, engine: Engine, clock: Clock) -> None:
    """What the requests share: the settings, the engine, the clock, the key cache, the renderers."""
    app.state.settings = settings
    app.state.engine = engine
    metrics.instrument_pool(engine)
    app.state.unit_of_work = partial(unit_of_work, engine)
    app.state.clock = clock
    app.state.key_cache = KeyCache(settings.key_cache_seconds)
    # How webhook host names are resolved when a bank sets its URL (tests put a fake DNS here).
    app.state.resolver = outbound.system_resolver
    # Certificates are rendered one after another off the request path: a confirmation only queues its
    # pledge here (after its commit) and its connection is free at once (see render_after_response).
    app.state.render_queue = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
    app.state.renderer = Renderer(
        settings.base_url(),
        workers=settings.certificate_workers,
        recycle_after=settings.certificate_recycle_after,
    )
    app.state.report_renderer = ReportRenderer.from_settings(settings)

    # Transfers that arrive while others are being written are written together (api/together.py), in the
    # unit of work the app has at each batch (tests replace it after the app is made).
    def current_unit_of_work() -> AbstractContextManager[Session]:
        unit: AbstractContextManager[Session] = app.state.unit_of_work()
        return unit

    app.state.transfers_together = together.combiner(settings, current_unit_of_work, ledger.transfer_json)


def _guard(app: FastAPI, settings: Settings, *, public: list[BaseRoute]) -> None:
    """The middleware, outermost last: the request id, then counting, then the docs' CSP, the body limit
    and the API key, all before the app reads a byte of the body."""
    app.add_middleware(ApiKeyMiddleware, public=public)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        larger={p: settings.max_batch_body_bytes for p in ("/v1/prices/trades", "/v1/transfers/batch")},
    )
    app.add_middleware(OfflineDocsMiddleware)  # the API reference pages may load nothing from outside
    app.add_middleware(ObserveMiddleware)  # counts and logs each request, with the id set just before
    app.add_middleware(RequestIdMiddleware)
