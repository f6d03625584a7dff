"""`registry serve` as an operator runs it: a process of its own with its own embedded PostgreSQL, on a
port that is not 8000, stopped by a signal.

- A certificate the server issues names the served address: its QR code, decoded from the PDF as a
  phone would, opens the certificate's verification on that server.
- With several workers the metrics of all of them are summed (prometheus-client's multiprocess mode).
- Every request's log line is JSON with its request id, and no key is ever logged.
- SIGTERM and SIGINT stop the embedded PostgreSQL the command started, even when an earlier holder of
  that server was killed without letting go of it."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from sqlmodel import Session

from tests.desk import Desk
from tests.test_certificates import qr_codes

ROOT = Path(__file__).resolve().parent.parent
PLACE = ROOT / ".registry-serve-test"  # pgserver opens the data folder's parents: inside the project


def free_port() -> int:
    """A free port in 18000-18999: anything but the 8000 the links used to name."""
    for port in random.sample(range(18000, 19000), 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in 18000-18999")


def environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REGISTRY_", "PROMETHEUS_")) and k != "DATABASE_URL"}  # fmt: skip
    env["REGISTRY_DATA_DIR"] = str(data_dir)
    return env


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    port: int
    data_dir: Path
    out: list[str]
    err: Path

    def postmaster(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=60)


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gone(pid: int, within_s: float = 15) -> bool:
    deadline = time.monotonic() + within_s
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def data_dir() -> Iterator[Path]:
    PLACE.mkdir(exist_ok=True)
    folder = PLACE / uuid.uuid4().hex[:10]
    yield folder
    postmaster = folder / "postmaster.pid"
    if postmaster.exists():  # a test that failed before the server stopped: leave nothing running
        pid = int(postmaster.read_text().splitlines()[0])
        if running(pid):
            os.kill(pid, signal.SIGTERM)
            gone(pid)
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def start(data_dir: Path, *args: str, tmp: Path) -> Iterator[Served]:
    port = free_port()
    err = tmp / "serve.err"
    with err.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "registry.cli", *args, "--port", str(port)],
            cwd=ROOT, env=environment(data_dir), stdout=subprocess.PIPE, stderr=errors, text=True,
        )  # fmt: skip
        served = Served(process, f"http://127.0.0.1:{port}", port, data_dir, [], err)
        try:
            _wait_ready(served)
            yield served
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _wait_ready(served: Served) -> None:
    stdout: IO[str] = served.process.stdout  # type: ignore[assignment]
    deadline = time.monotonic() + 120
    for line in stdout:
        served.out.append(line.rstrip("\n"))
        if line.startswith("registry serving at"):
            break
        assert time.monotonic() < deadline, "\n".join(served.out)
    while time.monotonic() < deadline:
        assert served.process.poll() is None, served.err.read_text()
        try:
            if httpx.get(f"{served.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server never became ready:\n" + served.err.read_text())


def demo_keys(out: list[str]) -> dict[str, str]:
    """The keys `registry demo` printed, by the line above each: role and party."""
    keys = {}
    for above, line in itertools.pairwise(out):
        if line.strip().startswith("rk_"):
            keys[" ".join(above.split())] = line.strip()
    return keys


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_the_demo_served_on_another_port_issues_certificates_that_verify_by_their_qr_code(
    data_dir: Path, tmp_path: Path
) -> None:
    with start(data_dir, "demo", "--serve", "--workers", "2", tmp=tmp_path) as served:
        keys = demo_keys(served.out)
        operator = keys[
            "exchange 西南环境权益交易所 Southwest Environmental Rights Exchange (demo-operator-1)"
        ]
        bank = keys["bank 锦江绿色商业银行 Jinjiang Green Commercial Bank"]
        assert f"http://127.0.0.1:{served.port}/console/" in "\n".join(served.out)  # the banner's address
        with httpx.Client(base_url=served.url, timeout=30) as http:
            scraped = http.get("/metrics").text
            assert metric(scraped, "registry_queue_depth", queue="awaiting_exchange") == 1
            waiting = http.get("/v1/instructions", params={"status": "pending"},
                               headers={"Authorization": f"Bearer {operator}"}).json()["items"]  # fmt: skip
            confirmed = http.post(f"/v1/instructions/{waiting[0]['id']}/confirm",
                                  headers={"Authorization": f"Bearer {operator}"})  # fmt: skip
            assert confirmed.status_code == 200, confirmed.text
            pledge = confirmed.json()["pledge_id"]
            pdf = http.get(f"/v1/pledges/{pledge}/certificate", headers={"Authorization": f"Bearer {bank}"})
            assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
            [link] = qr_codes(pdf.content)
            assert link.startswith(f"http://127.0.0.1:{served.port}/v1/certificates/"), link
            checked = httpx.get(link, headers={"Accept": "application/json"}, timeout=30)
            assert checked.status_code == 200 and checked.json()["status"] == "valid", checked.text

            # Two workers, one sum: whichever answers the scrape counts the other's requests too.
            for _ in range(20):
                assert http.get("/healthz").status_code == 200
            scraped = http.get("/metrics").text
            assert metric(scraped, "registry_http_requests_total", route="/healthz", status="200") == 20
            assert metric(scraped, "registry_queue_depth", queue="awaiting_exchange") == 0
            assert metric(scraped, "registry_db_pool_size") == 20  # 10 per worker process
        postmaster = served.postmaster()
        assert served.stop(signal.SIGTERM) == 0
        assert gone(postmaster), "the embedded PostgreSQL outlived `registry serve`"

    logged = [json.loads(line) for line in served.err.read_text().splitlines() if line.startswith("{")]
    requests = [line for line in logged if line["logger"] == "registry.request"]
    confirm = next(line for line in requests if line["route"] == "/v1/instructions/{instruction_id}/confirm")
    assert re.fullmatch(r"[0-9a-f]{32}", confirm["request_id"]) and confirm["status"] == 200
    assert all("request_id" in line for line in requests)
    text = served.err.read_text()
    assert not any(key in text for key in keys.values())  # no key is ever logged
    assert "code=" not in text  # nor the verification code of the link just opened


def test_serve_stops_its_postgres_on_sigint_even_after_a_holder_was_killed(
    data_dir: Path, tmp_path: Path
) -> None:
    made = subprocess.run([sys.executable, "-m", "registry.cli", "migrate"], check=False, cwd=ROOT,
                          env=environment(data_dir), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr
    killed = subprocess.Popen(["true"])  # a holder that died without letting go (kill -9, a crash)
    killed.wait()
    holders = data_dir / ".handle_pids.json"
    holders.write_text(json.dumps([killed.pid]))
    with start(data_dir, "serve", tmp=tmp_path) as served:
        postmaster = served.postmaster()
        assert served.stop(signal.SIGINT) == 0
        assert gone(postmaster), "the embedded PostgreSQL outlived `registry serve`"
    assert json.loads(holders.read_text()) == []


def test_a_public_url_given_is_what_certificates_link_to(
    session: Session, engine: Engine, desk: Desk
) -> None:
    """REGISTRY_PUBLIC_URL wins over the address served: behind a proxy, clients know only the proxy's."""
    from contextlib import contextmanager as cm

    from fastapi.testclient import TestClient

    from api.app import create_app
    from registry.clock import FixedClock
    from registry.config import Settings
    from tests.desk import confirm, register

    settings = Settings(database_url="postgresql://unused/unused", key_cache_seconds=0, scheduler_enabled=False,
                        certificate_workers=0, report_workers=0, port=18999,
                        public_url="https://registry.example.cn")  # fmt: skip
    app = create_app(settings, engine=engine, clock=FixedClock())

    @cm
    def same_session() -> Iterator[Session]:
        with session.begin_nested():
            yield session

    app.state.unit_of_work = same_session
    with TestClient(app, raise_server_exceptions=False) as client:
        pledge = register(client, desk)
        assert confirm(client, desk.op1, pledge["instructions"][0]).status_code == 200
        pdf = client.get(f"/v1/pledges/{pledge['id']}/certificate", headers=desk.bank)
    [link] = qr_codes(pdf.content)
    assert link.startswith("https://registry.example.cn/v1/certificates/"), link
