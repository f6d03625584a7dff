"""Where PDF reports are rendered, and how many at once.

A report's PDF takes up to seconds of CPU (WeasyPrint). Rendered in the request threads, 40 at once
from one bank took the threads and the interpreter lock from everyone: another bank's answers went
from 0.04 s to 4.1 s. So:
- the PDF is made in worker processes of its own (`workers`, at a lower CPU priority), never in the
  request's thread, and its figures are queried before (registry/report/render.py);
- a party has at most `per_party` PDF reports rendering at once, in all app processes and instances:
  slot k of party P is a PostgreSQL advisory lock of the request's transaction, so it is given back at
  the transaction's end, even by a process that dies. One more is refused (`TooManyReports`, 429);
- a process renders at most `total` at once (beyond: `Busy`, 503), so the requests waiting for the
  workers can hold only that many threads and database connections.
Both refusals come before any of the report's work and carry Retry-After."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

from sqlalchemy import text
from sqlmodel import Session

from registry.config import RECYCLE_AFTER, Settings
from registry.errors import Busy, RegistryError
from registry.pdf import write_pdf
from registry.workers import WorkerPool

RETRY_AFTER_S = 2
_NAMESPACE = zlib.crc32(b"report_pdf") - 2**31  # advisory locks' first key, as a signed int4


class TooManyReports(RegistryError):
    code = "rate_limited"
    title = "Too many reports at once"
    message = "Too many reports at once; try again in {retry_after} s."

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} PDF reports at once per party; retry in {RETRY_AFTER_S} s",
                         retry_after=RETRY_AFTER_S, limit=limit)  # fmt: skip


class ReportsBusy(Busy):
    def __init__(self) -> None:
        super().__init__("the report renderers are busy; retry shortly", retry_after=RETRY_AFTER_S)


class ReportRenderer:
    def __init__(self, *, workers: int, per_party: int, total: int, recycle_after: int = RECYCLE_AFTER,
                 write: Callable[[str], bytes] = write_pdf) -> None:  # fmt: skip
        self.per_party = per_party
        self._pool = WorkerPool(workers=workers, recycle_after=recycle_after, timeout_s=120, what="report")
        self._write = write
        self._slots = threading.BoundedSemaphore(total)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, write: Callable[[str], bytes] = write_pdf
    ) -> ReportRenderer:
        return cls(workers=settings.report_workers, per_party=settings.report_pdf_per_party,
                   total=settings.report_pdf_total, recycle_after=settings.certificate_recycle_after,
                   write=write)  # fmt: skip

    @contextmanager
    def admitted(self, session: Session, party_id: UUID) -> Iterator[Callable[[str], bytes]]:
        """A place to render one PDF for `party_id`, or a refusal at once; yields the HTML → PDF step."""
        if not any(self._claim(session, party_id, slot) for slot in range(self.per_party)):
            raise TooManyReports(self.per_party)
        if not self._slots.acquire(blocking=False):
            raise ReportsBusy()
        try:
            yield lambda html: self._pool.run(self._write, html)
        finally:
            self._slots.release()

    @staticmethod
    def _claim(session: Session, party_id: UUID, slot: int) -> bool:
        key = zlib.crc32(party_id.bytes + slot.to_bytes(2, "big")) - 2**31
        return bool(
            session.execute(
                text("SELECT pg_try_advisory_xact_lock(:ns, :key)"), {"ns": _NAMESPACE, "key": key}
            ).scalar_one()
        )

    def close(self) -> None:
        self._pool.close()
