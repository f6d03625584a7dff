"""Regenerates the pictures in docs/img/ from the demo data: `.venv/bin/python scripts/docs_images.py`.

The demo is loaded into a throw-away embedded PostgreSQL; the certificate is the demo's active pledge's,
rendered exactly as the registry renders it, its first page turned into PNG by pdftoppm."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from registry import demo
from registry.certificate import service as certificates
from registry.certificate.renderer import Renderer
from registry.clock import SystemClock
from registry.db import make_engine, migrate, start_embedded, unit_of_work
from registry.principal import SYSTEM, Actor

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
        number = session.execute(
            text("SELECT number FROM certificate ORDER BY issued_at LIMIT 1")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
