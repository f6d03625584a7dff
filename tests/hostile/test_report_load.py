"""One bank asking for many PDF reports at once gets as many as its share and 429s for the rest, at once;
another bank's requests are answered meanwhile, and PDFs are made in worker processes."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from registry.config import Settings
from registry.db import unit_of_work
from registry.ledger.models import PartyKind
from registry.principal import Role
from registry.report.renderer import ReportRenderer
from tests import factories as f
from tests.conftest import Live

AS_OF = "2026-11-30"


class HeldWriter:
    """Makes a "PDF" only when the test lets it, and counts how many are being made at once."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.started = 0

    def __call__(self, html: str) -> bytes:
        with self.lock:
            self.now += 1
            self.started += 1
            self.most = max(self.most, self.now)
        try:
            assert self.go.wait(30), "the test never let the renderer go"
            return b"%PDF-1.7 held"
        finally:
            with self.lock:
                self.now -= 1


def eventually(condition: Any, within_s: float = 10) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_forty_pdfs_from_one_bank_leave_another_bank_answered(live: Live, committed_engine: Engine) -> None:
    with unit_of_work(committed_engine) as s:
        a, b = f.party(s, PartyKind.BANK), f.party(s, PartyKind.BANK)
        key_a, key_b = f.auth(f.key(s, a, Role.BANK)), f.auth(f.key(s, b, Role.BANK))
    held = HeldWriter()
    live.app.state.report_renderer = ReportRenderer(workers=0, per_party=2, total=4, write=held)
    pdf = {"as_of": AS_OF, "format": "pdf"}
    with httpx.Client(base_url=live.url, timeout=60) as http, ThreadPoolExecutor(max_workers=41) as pool:
        flood = [
            pool.submit(http.get, "/v1/reports/collateral-book", params=pdf, headers=key_a) for _ in range(40)
        ]
        assert eventually(lambda: sum(x.done() for x in flood) == 38 and held.now == 2)
        refused = [x.result() for x in flood if x.done()]
        assert {r.status_code for r in refused} == {429}
        assert all(r.headers["content-type"] == "application/problem+json" for r in refused)
        assert all(r.headers["retry-after"] == "2" and r.json()["code"] == "rate_limited" for r in refused)
        # meanwhile the other bank: its JSON at once, and a PDF of its own (its share is its own)
        began = time.monotonic()
        answered = http.get("/v1/reports/collateral-book", params={"as_of": AS_OF}, headers=key_b)
        assert answered.status_code == 200 and time.monotonic() - began < 5  # generous: ~0.05 s
        theirs = pool.submit(http.get, "/v1/reports/collateral-book", params=pdf, headers=key_b)
        assert eventually(lambda: held.now == 3)
        held.go.set()
        rendered = [x.result() for x in flood if x.result().status_code != 429]
        assert [r.status_code for r in rendered] == [200, 200]
        assert all(r.headers["content-type"] == "application/pdf" for r in rendered)
        assert theirs.result().status_code == 200
    assert held.most == 3 and held.started == 3


def test_the_process_bounds_reports_in_all(live: Live, committed_engine: Engine) -> None:
    """Beyond `total` at once in a process, any party's next report is a 503 with Retry-After."""
    with unit_of_work(committed_engine) as s:
        bank = f.auth(f.key(s, f.party(s, PartyKind.BANK), Role.BANK))
        other = f.auth(f.key(s, f.party(s, PartyKind.BANK), Role.BANK))
    held = HeldWriter()
    live.app.state.report_renderer = ReportRenderer(workers=0, per_party=5, total=1, write=held)
    pdf = {"as_of": AS_OF, "format": "pdf"}
    with httpx.Client(base_url=live.url, timeout=60) as http, ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(http.get, "/v1/reports/collateral-book", params=pdf, headers=bank)
        assert eventually(lambda: held.now == 1)
        busy = http.get("/v1/reports/collateral-book", params=pdf, headers=other)
        held.go.set()
        assert first.result().status_code == 200
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert busy.json()["code"] == "busy"


def pid_pdf(html: str) -> bytes:
    return f"%PDF-1.7 made by {os.getpid()}".encode()


def test_pdfs_are_made_in_a_worker_process(client: TestClient, session: Session) -> None:
    renderer = ReportRenderer(workers=1, per_party=2, total=4, write=pid_pdf)
    client.app.state.report_renderer = renderer  # type: ignore[attr-defined]
    try:
        bank = f.auth(f.key(session, f.party(session, PartyKind.BANK), Role.BANK))
        answer = client.get(  # the test client's clock is at 2026-03-02
            "/v1/reports/collateral-book", params={"as_of": "2026-03-02", "format": "pdf"}, headers=bank
        )
    finally:
        renderer.close()
    assert answer.status_code == 200
    made_by = int(answer.content.rsplit(b" ", 1)[1])
    assert made_by != os.getpid()


def test_the_settings_set_the_bounds(live: Live, committed_engine: Engine) -> None:
    with unit_of_work(committed_engine) as s:
        bank = f.auth(f.key(s, f.party(s, PartyKind.BANK), Role.BANK))
    held = HeldWriter()
    settings = Settings(database_url="postgresql://unused/unused", report_workers=0, report_pdf_per_party=1,
                        report_pdf_total=3)  # fmt: skip
    live.app.state.report_renderer = ReportRenderer.from_settings(settings, write=held)
    pdf = {"as_of": AS_OF, "format": "pdf"}
    with httpx.Client(base_url=live.url, timeout=60) as http, ThreadPoolExecutor(max_workers=3) as pool:
        asked = [
            pool.submit(http.get, "/v1/reports/collateral-book", params=pdf, headers=bank) for _ in range(3)
        ]
        assert eventually(lambda: sum(x.done() for x in asked) == 2 and held.now == 1)
        held.go.set()
        assert sorted(x.result().status_code for x in asked) == [200, 429, 429]
