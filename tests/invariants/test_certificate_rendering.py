"""Rendering happens after the confirmation is answered, in the background, and holds nothing up."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from sqlalchemy import Engine

from registry.certificate.render import render_pdf
from registry.db import unit_of_work
from registry.ledger.models import PartyKind
from registry.principal import Role
from tests import factories as f
from tests.conftest import Live


class HeldRenderer:
    """Renders for real, but only once the test lets it."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.started = threading.Event()

    def __call__(self, content: dict[str, Any]) -> bytes:
        self.started.set()
        assert self.go.wait(30), "the test never released the renderer"
        return render_pdf(content, "https://registry.example.cn")

    def close(self) -> None:
        self.go.set()


def test_a_confirmation_is_answered_while_its_certificate_renders(
    live: Live, committed_engine: Engine
) -> None:
    with unit_of_work(committed_engine) as session:
        exchange, bank = f.party(session, PartyKind.EXCHANGE), f.party(session, PartyKind.BANK)
        pledgor = f.party(session)
        account = f.account(session, pledgor)
        f.issue(session, account.id, 1000)
        op, banker, owner = (
            f.auth(f.key(session, exchange, Role.EXCHANGE)),
            f.auth(f.key(session, bank, Role.BANK)),
            f.auth(f.key(session, pledgor, Role.HOLDER)),
        )
    renderer = HeldRenderer()
    live.app.state.renderer = renderer
    with httpx.Client(base_url=live.url, timeout=30) as http:
        pledge = http.post(
            "/v1/pledges", headers=banker, json=f.pledge_body(account.id, pledgor.id, 100)
        ).json()
        http.post(f"/v1/instructions/{pledge['instructions'][0]['id']}/consent", headers=owner)
        confirmed = http.post(f"/v1/instructions/{pledge['instructions'][0]['id']}/confirm", headers=op)
        assert confirmed.status_code == 200  # answered before its certificate is rendered
        assert renderer.started.wait(10)  # the rendering is under way, in the background, and held
        assert http.get("/healthz").status_code == 200  # the app keeps answering meanwhile
        mine = http.get(f"/v1/pledges/{pledge['id']}", headers=banker).json()
        assert mine["status"] == "active" and mine["certificate"]["sha256"] is None
        renderer.go.set()
        deadline = time.monotonic() + 30
        while mine["certificate"]["sha256"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
            mine = http.get(f"/v1/pledges/{pledge['id']}", headers=banker).json()
        pdf = http.get(f"/v1/pledges/{pledge['id']}/certificate", headers=banker)
        assert pdf.status_code == 200 and pdf.headers["etag"] == f'"{mine["certificate"]["sha256"]}"'
