"""Invariant tests commit for real: races, deferred checks and tampering only show at commit."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from api.app import create_app
from registry.clock import SystemClock
from registry.config import Settings


@dataclass
class Live:
    url: str
    app: FastAPI


@pytest.fixture
def live_url(live: Live) -> str:
    return live.url


@pytest.fixture
def live(committed_engine: Engine) -> Iterator[Live]:
    """The real app on a loopback port, over the committed database."""
    app = create_app(
        Settings(
            database_url="postgresql://unused/unused",
            key_cache_seconds=0,
            scheduler_enabled=False,
            certificate_workers=0,
        ),
        engine=committed_engine,
        clock=SystemClock(),
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield Live(f"http://127.0.0.1:{port}", app)
    server.should_exit = True
    thread.join(timeout=10)
