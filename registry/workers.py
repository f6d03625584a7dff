"""Worker processes for CPU-bound, pure work (PDFs): off the event loop, out of the request threads'
interpreter lock, at a lower CPU priority, each replaced after `recycle_after` tasks so that memory
cannot creep. `workers=0` runs the work in the calling thread (tests, one-off tools)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from registry.config import RECYCLE_AFTER
from registry.errors import Busy

log = logging.getLogger(__name__)

T = TypeVar("T")


class WorkUnavailable(Busy):
    """The workers did not finish the task (died twice, or took too long); nothing was changed."""


def _yield_to_requests() -> None:
    """Workers run at the lowest CPU priority: under a burst, answering requests comes first and the
    documents catch up afterwards. (At nice 10 the two certificate renderers still took two thirds of the
    app's CPU during the pledge bench, ahead of the requests they follow.)"""
    os.nice(19)


class WorkerPool:
    def __init__(
        self, *, workers: int, recycle_after: int = RECYCLE_AFTER, timeout_s: float = 60, what: str = "task"
    ) -> None:
        self.workers = workers
        self._recycle_after = recycle_after
        self._timeout_s = timeout_s
        self._what = what
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker (a module-level function and picklable arguments)."""
        if self.workers == 0:
            return fn(*args)
        try:
            try:
                return self._executor().submit(fn, *args).result(self._timeout_s)
            except BrokenProcessPool:
                # A worker died (killed, out of memory): start a fresh pool and try once more.
                self._reset()
                return self._executor().submit(fn, *args).result(self._timeout_s)
        except (BrokenProcessPool, TimeoutError) as exc:
            log.exception("%s failed in the worker pool", self._what)
            raise WorkUnavailable(f"the {self._what} could not be made just now; retry") from exc

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the parent has threads and database connections a fork would copy.
                self._pool = ProcessPoolExecutor(
                    self.workers,
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
