"""For the operator's tools, not for clients: liveness, readiness and Prometheus metrics.

No API key on these three (the key middleware covers /v1/ only): keep them off the public network, e.g.
let the reverse proxy answer `/healthz`, `/readyz` and `/metrics` only from the monitoring network."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api import problems
from api.routers.common import PROBLEM
from registry import metrics
from registry.db import schema_state

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers (it asks nothing of the database)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its migrations are at this code's head",
    responses={503: {**PROBLEM, "description": "the database does not answer, or is not migrated to head"}},
)
async def readyz(request: Request) -> Any:
    try:
        state = await run_in_threadpool(schema_state, request.app.state.engine)
    except Exception as exc:  # any failure to ask is "not ready", never a 500
        log.warning("not ready: the database did not answer (%s)", type(exc).__name__)
        return problems.problem(request, 503, "not_ready", "Not ready", "the database does not answer")
    if not state.at_head:
        detail = (f"the database's migrations are {sorted(state.applied) or 'none'}, this code's head is "
                  f"{sorted(state.heads)}: run `registry migrate`")  # fmt: skip
        return problems.problem(request, 503, "not_ready", "Not ready", detail)
    return {"status": "ready", "migrations": sorted(state.applied)}


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4"}},
)
async def read_metrics(request: Request) -> Response:
    body = await run_in_threadpool(metrics.exposition, request.app.state.engine)
    return Response(body, media_type=metrics.CONTENT_TYPE)
