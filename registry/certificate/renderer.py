"""Where certificates are rendered: worker processes, so that a 0.1 s CPU-bound rendering neither holds
the API's event loop nor competes with request handling for the interpreter lock, and so that a long
run of renderings cannot grow the API's memory (workers are replaced after `recycle_after` documents).
`workers=0` renders in the calling thread: tests and one-off tools."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from registry.certificate.render import render_pdf
from registry.errors import Busy

log = logging.getLogger(__name__)


class RenderingUnavailable(Busy):
    """The workers did not produce the PDF (died twice, or took too long); nothing was stored."""


RENDER_TIMEOUT_SECONDS = 60


def _yield_to_requests() -> None:
    """Workers run at a lower CPU priority: under a burst of confirmations, answering requests comes first
    and the renderings catch up afterwards."""
    os.nice(10)


class Renderer:
    def __init__(self, base_url: str, *, workers: int = 1, recycle_after: int = 200) -> None:
        self.base_url = base_url
        self._workers = workers
        self._recycle_after = recycle_after
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def __call__(self, content: dict[str, Any]) -> bytes:
        if self._workers == 0:
            return render_pdf(content, self.base_url)
        try:
            try:
                return self._submit(content)
            except BrokenProcessPool:
                # A worker died (killed, out of memory): start a fresh pool and try once more.
                self._reset()
                return self._submit(content)
        except (BrokenProcessPool, TimeoutError) as exc:
            log.exception("certificate rendering failed")
            raise RenderingUnavailable("the certificate could not be rendered just now; retry") from exc

    def _submit(self, content: dict[str, Any]) -> bytes:
        return self._executor().submit(render_pdf, content, self.base_url).result(RENDER_TIMEOUT_SECONDS)

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the parent has threads and database connections a fork would copy.
                self._pool = ProcessPoolExecutor(
                    self._workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    max_tasks_per_child=self._recycle_after,
                    initializer=_yield_to_requests,
                )
            return self._pool

    def _reset(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
