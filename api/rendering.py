"""Certificates rendered off the request path: the app's renderer as a dependency, and the queueing of a
confirmation's rendering once its response is sent (for the routers and the console alike)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import BackgroundTasks, Depends, Request

from registry.certificate import service as certificates
from registry.certificate.renderer import Renderer


async def get_renderer(request: Request) -> Renderer:
    renderer: Renderer = request.app.state.renderer
    return renderer


RendererDep = Annotated[Renderer, Depends(get_renderer)]


def render_after_response(request: Request, background: BackgroundTasks, pledge_id: UUID) -> None:
    """After the response (and so after the commit), queue the rendering of the certificate a confirmation
    issued, so that its first download is already stored. Only the queueing runs as the request's
    background task: a task that rendered would hold the client's connection for the rendering."""
    state = request.app.state

    async def queue() -> None:
        # Coroutine, not a plain function: Starlette runs a plain background function in a worker thread,
        # a hop of its own for a call that only puts the work in the queue and returns.
        state.render_queue.submit(
            certificates.render_pending, state.engine, state.renderer, state.clock.now, pledge_id=pledge_id
        )

    background.add_task(queue)
