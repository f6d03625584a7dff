"""Where certificates are rendered: worker processes (registry/workers.py), so that a ~0.4 s CPU-bound
rendering neither holds the API's event loop nor competes with request handling for the interpreter
lock, and so that a long run of renderings cannot grow the API's memory (workers are replaced after
`recycle_after` documents). `workers=0` renders in the calling thread: tests and one-off tools."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Any

from registry.certificate.render import render_pdf
from registry.config import RECYCLE_AFTER
from registry.workers import WorkerPool, WorkUnavailable

RENDER_TIMEOUT_SECONDS = 60


class RenderingUnavailable(WorkUnavailable):
    """The workers did not produce the PDF (died twice, or took too long); nothing was stored."""


class Renderer:
    def __init__(self, base_url: str, *, workers: int = 1, recycle_after: int = RECYCLE_AFTER) -> None:
        self.base_url = base_url
        self._pool = WorkerPool(
            workers=workers, recycle_after=recycle_after, timeout_s=RENDER_TIMEOUT_SECONDS, what="certificate"
        )

    def __call__(self, content: dict[str, Any]) -> bytes:
        try:
            return self._pool.run(render_pdf, content, self.base_url)
        except WorkUnavailable as exc:
            raise RenderingUnavailable("the certificate could not be rendered just now; retry") from exc

    def _executor(self) -> ProcessPoolExecutor:
        return self._pool._executor()

    def close(self) -> None:
        self._pool.close()
