"""Regenerates the pictures in docs/img/ from the demo data: `.venv/bin/python scripts/docs_images.py`
(after `scripts/install --tests`, which brings pdftoppm and chromium).

The demo is loaded into a throw-away embedded PostgreSQL; the certificate is the demo's active pledge's,
rendered exactly as the registry renders it, its first page turned into PNG by pdftoppm; the console's
pages are screenshots of the app, served on a loopback port, in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import text

from registry import demo
from registry.calendar import EXCHANGE_TZ
from registry.certificate import service as certificates
from registry.certificate.renderer import Renderer
from registry.clock import SystemClock
from registry.db import make_engine, migrate, start_embedded, unit_of_work
from registry.ledger.repository import exchange_name
from registry.principal import SYSTEM, Actor, Principal, Role
from registry.report.collateral_book import collateral_book
from registry.report.render import collateral_book_pdf

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
PUBLIC_URL = "https://registry.example.cn"


def main() -> int:
    IMG.mkdir(parents=True, exist_ok=True)
    work = ROOT / "bench" / ".data-docs"  # git-ignored; the server stops when this process exits
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    url = start_embedded(work / "pg")
    migrate(url)
    engine = make_engine(url, pool_size=1)
    now = SystemClock().now()
    with unit_of_work(engine) as session:
        demo.load(session, Actor(SYSTEM, now, request_id="docs"))
        people = {u.username: u.password for u in demo.console_users(session, Actor(SYSTEM, now))}
        pledge_id, bank_id = session.execute(
            text("SELECT id, pledgee_party_id FROM pledge WHERE status = 'active'")
        ).one()
        book = collateral_book(
            session,
            Principal(None, Role.AUDITOR),
            as_of=now.astimezone(EXCHANGE_TZ).date(),
            bank_id=bank_id,
            today=now.astimezone(EXCHANGE_TZ).date(),
        )
        (work / "report.pdf").write_bytes(collateral_book_pdf(book, exchange_name(session)))
        number = session.execute(
            text("SELECT number FROM certificate WHERE status = 'valid' ORDER BY issued_at LIMIT 1")
        ).scalar_one()
        found = certificates.by_number(session, number)
        assert found is not None
        pdf = certificates.pdf_for(session, found, Renderer(PUBLIC_URL, workers=0), now)
    engine.dispose()
    (work / "certificate.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "110", "-png", "-f", "1", "-l", "1", "-singlefile",
         str(work / "certificate.pdf"), str(IMG / "certificate")],
        check=True,
    )  # fmt: skip
    print(f"docs/img/certificate.png: {number}")
    subprocess.run(
        ["pdftoppm", "-r", "90", "-png", "-f", "1", "-l", "1", "-singlefile", str(work / "report.pdf"),
         str(IMG / "report-collateral-book")],
        check=True,
    )  # fmt: skip
    print("docs/img/report-collateral-book.png")
    screenshots(engine, people, pledge_id)
    return 0


def screenshots(engine: Any, people: dict[str, str], pledge_id: Any) -> None:
    import threading
    import time

    import uvicorn
    from playwright.sync_api import sync_playwright

    from api.app import create_app
    from registry.config import Settings

    settings = Settings(database_url="postgresql://unused/unused", scheduler_enabled=False, certificate_workers=0,
                        public_url=PUBLIC_URL)  # fmt: skip
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, engine=engine), port=8765, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = "http://127.0.0.1:8765"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        for username, path, name, height in [
            ("demo-operator-2", "/console/queue", "console-queue", 560),
            ("demo-operator-2", f"/console/pledges/{pledge_id}", "console-pledge", 1180),
        ]:
            page = browser.new_page(viewport={"width": 1280, "height": height})
            page.goto(f"{base}/console/login")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", people[username])
            page.click("button[type=submit]")
            page.goto(base + path)
            page.screenshot(path=str(IMG / f"{name}.png"))
            print(f"docs/img/{name}.png")
            page.close()
        browser.close()
    server.should_exit = True


if __name__ == "__main__":
    sys.exit(main())
