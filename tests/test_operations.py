"""What an operator's tools see: /metrics (parsed with prometheus-client's own parser, series moving
after traffic), /healthz beside /readyz, and one structured log line per request carrying its id."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from api.app import create_app
from registry import logs, scheduler
from registry.clock import FixedClock
from registry.config import Settings, get_settings
from registry.db import alembic_config, make_engine, unit_of_work
from tests import factories as f
from tests.desk import Desk, make_desk

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def gained(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@dataclass
class Held:
    """The app's render queue, holding what it is given until told to run it."""

    calls: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.calls.append((fn, args, kwargs))

    def run(self) -> None:
        for fn, args, kwargs in self.calls:
            fn(*args, **kwargs)
        self.calls.clear()

    def shutdown(self, **_: Any) -> None:
        pass


def ops_settings(**overrides: Any) -> Settings:
    return Settings(database_url="postgresql://unused/unused", key_cache_seconds=0, scheduler_enabled=False,
                    certificate_workers=0, report_workers=0, **overrides)  # fmt: skip


@pytest.fixture
def committed(committed_engine: Engine) -> Iterator[tuple[TestClient, Desk, FixedClock]]:
    """The app over a database that really commits: the queue depths are read by the scrape's own
    connection, which sees only committed rows."""
    clock = FixedClock()
    with unit_of_work(committed_engine) as s:
        desk = make_desk(s)
    app = create_app(ops_settings(), engine=committed_engine, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, desk, clock


def test_metrics_show_requests_queues_jobs_and_the_pool_moving(
    committed: tuple[TestClient, Desk, FixedClock], committed_engine: Engine
) -> None:
    client, desk, clock = committed
    before = scrape(client)
    assert value(before, "registry_queue_scrape_ok") == 1
    names = (
        "awaiting_consent",
        "awaiting_exchange",
        "certificates_unrendered",
        "webhooks_pending",
        "webhooks_failed",
    )
    queue = {name: value(before, "registry_queue_depth", queue=name) for name in names}
    assert queue == dict.fromkeys(queue, 0.0)

    # Requests, by route template: ids make no series of their own.
    for _ in range(3):
        assert client.get(f"/v1/pledges/{uuid.uuid4()}", headers=desk.bank).status_code == 404
    made = client.post(
        "/v1/pledges", headers=desk.bank, json=f.pledge_body(desk.account, desk.borrower, 1000)
    )
    assert made.status_code == 201
    after = scrape(client)
    template = "/v1/pledges/{pledge_id}"
    # Counters belong to the process (other tests' requests count too): what moved is what matters.
    assert (
        gained(after, before, "registry_http_requests_total", method="GET", route=template, status="404") == 3
    )
    posted = {"method": "POST", "route": "/v1/pledges"}
    assert gained(after, before, "registry_http_request_duration_seconds_count", **posted) == 1
    assert gained(after, before, "registry_http_request_duration_seconds_bucket", **posted, le="+Inf") == 1
    assert not any(str(pledge) in str(key) for key in after for pledge in (made.json()["id"],))
    assert value(after, "registry_queue_depth", queue="awaiting_consent") == 1

    instruction = made.json()["instructions"][0]["id"]
    assert client.post(f"/v1/instructions/{instruction}/consent", headers=desk.pledgor).status_code == 200
    consented = scrape(client)
    assert value(consented, "registry_queue_depth", queue="awaiting_consent") == 0
    assert value(consented, "registry_queue_depth", queue="awaiting_exchange") == 1

    held = Held()
    client.app.state.render_queue = held  # type: ignore[attr-defined]
    assert client.post(f"/v1/instructions/{instruction}/confirm", headers=desk.op1).status_code == 200
    confirmed = scrape(client)
    assert value(confirmed, "registry_queue_depth", queue="awaiting_exchange") == 0
    assert value(confirmed, "registry_queue_depth", queue="certificates_unrendered") == 1
    held.run()  # the rendering the confirmation queued
    assert value(scrape(client), "registry_queue_depth", queue="certificates_unrendered") == 0

    # The webhook outbox: one waiting, one given up on.
    with unit_of_work(committed_engine) as s:
        pledge = s.execute(text("SELECT id, pledgee_party_id FROM pledge")).one()
        alert = s.execute(text("INSERT INTO alert (pledge_id, pledgee_party_id, kind, raised_at) "
                               "VALUES (:p, :b, 'margin_warning', now()) RETURNING id"),
                          {"p": pledge.id, "b": pledge.pledgee_party_id}).scalar_one()  # fmt: skip
        for status in ("pending", "failed"):
            s.execute(text("INSERT INTO webhook_delivery (alert_id, party_id, event, payload, status, "
                           "next_attempt_at, created_at) VALUES (:a, :b, 'alert.raised', '{}', :s, now(), now())"),
                      {"a": alert, "b": pledge.pledgee_party_id, "s": status})  # fmt: skip
    outbox = scrape(client)
    assert value(outbox, "registry_queue_depth", queue="webhooks_pending") == 1
    assert value(outbox, "registry_queue_depth", queue="webhooks_failed") == 1

    # The pool of the app's engine (committed_engine: 40 connections), current at each checkout/checkin.
    assert value(outbox, "registry_db_pool_size") == 40
    assert value(outbox, "registry_db_pool_checked_in") + value(outbox, "registry_db_pool_checked_out") >= 1

    # The scheduler's own jobs, as it wires them: runs, outcomes, durations, items; the daily one once.
    jobs = scheduler.build(committed_engine, clock, ops_settings())
    jobs.start(paused=True)
    try:
        runs = {job.id: job.func for job in jobs.get_jobs()}
        runs["expire_holds"]()
        runs["revalue"]()
        runs["revalue"]()  # the same fire time again: another process (here, the first run) had it
    finally:
        jobs.shutdown(wait=False)
    ran = scrape(client)
    for job, outcome, times in (("expire_holds", "ran", 1), ("revalue", "ran", 1), ("revalue", "skipped", 1)):
        assert gained(ran, before, "registry_job_runs_total", job=job, outcome=outcome) == times, (
            job,
            outcome,
        )
    assert gained(ran, before, "registry_job_duration_seconds_count", job="revalue") == 1
    assert gained(ran, before, "registry_job_items_total", job="revalue") == 1  # the pledge just confirmed
    assert value(ran, "registry_job_last_success_timestamp_seconds", job="expire_holds") > 0
    assert value(ran, "registry_job_last_finished_timestamp_seconds", job="revalue") > 0  # from job_run


def test_health_answers_without_the_database_readiness_does_not(settings: Settings) -> None:
    nowhere = make_engine("postgresql+psycopg://nobody@/nothing?host=/nonexistent", pool_size=1)
    app = create_app(settings, engine=nowhere, clock=FixedClock())
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["content-type"] == "application/problem+json"
        assert ready.json()["code"] == "not_ready" and ready.headers["retry-after"]
        metrics = scrape(client)  # the scrape still answers, saying the queues could not be read
        assert value(metrics, "registry_queue_scrape_ok") == 0
    nowhere.dispose()


def test_ready_only_at_the_migrations_head(committed_engine: Engine, settings: Settings) -> None:
    from alembic import command

    app = create_app(settings, engine=committed_engine, clock=FixedClock())
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        url = committed_engine.url.render_as_string(hide_password=False)
        command.downgrade(alembic_config(url), "-1")
        behind = client.get("/readyz")
        assert behind.status_code == 503 and "registry migrate" in behind.json()["detail"]
        command.upgrade(alembic_config(url), "head")
        assert client.get("/readyz").status_code == 200


def test_operations_need_no_key_and_are_documented(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200, path
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz", "/metrics"} <= set(paths)
    assert "503" in paths["/readyz"]["get"]["responses"]


# --- logs ------------------------------------------------------------------------------------------


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def request_lines(err: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "registry.request"]


def test_json_logs_carry_the_request_id_and_no_secrets(
    client: TestClient, desk: Desk, capsys: pytest.CaptureFixture[str], restored_logging: None
) -> None:
    logs.configure("INFO", "json")
    capsys.readouterr()
    key = desk.bank["Authorization"].removeprefix("Bearer ")
    client.get(f"/v1/pledges/{uuid.uuid4()}", headers={**desk.bank, "X-Request-ID": "rid-one"})
    client.get("/v1/certificates/ZY-2026-000001-01/verify", params={"code": "SECRETCODE12"},
               headers={"X-Request-ID": "rid-two", "Cookie": "registry_session=cookie-value"})  # fmt: skip
    client.post("/console/login", data={"username": "someone", "password": "hunter2-hunter2"},
                headers={"X-Request-ID": "rid-three"})  # fmt: skip
    # What the registry wrote (the test client's own httpx lines name the URLs it asked for).
    err = "\n".join(line for line in capsys.readouterr().err.splitlines() if '"logger": "httpx"' not in line)
    lines = {line["request_id"]: line for line in request_lines(err)}
    first = lines["rid-one"]
    assert (first["method"], first["route"], first["status"]) == ("GET", "/v1/pledges/{pledge_id}", 404)
    assert isinstance(first["duration_ms"], float) and first["path"].startswith("/v1/pledges/")
    assert lines["rid-two"]["route"] == "/v1/certificates/{number}/verify"
    assert lines["rid-three"]["method"] == "POST"
    for secret in (key, "SECRETCODE12", "cookie-value", "hunter2", "Bearer"):
        assert secret not in err, secret


def test_text_logs_when_configured(
    client: TestClient, capsys: pytest.CaptureFixture[str], restored_logging: None
) -> None:
    logs.configure("INFO", "text")
    capsys.readouterr()
    client.get("/healthz", headers={"X-Request-ID": "rid-text"})
    line = next(line for line in capsys.readouterr().err.splitlines() if "registry.request" in line)
    assert not line.startswith("{") and "GET /healthz 200" in line and "[request rid-text]" in line


@pytest.mark.parametrize(("given", "formatter"), [(None, logs.JsonFormatter), ("json", logs.JsonFormatter),
                                                  ("text", logs.TextFormatter)])  # fmt: skip
def test_the_log_format_setting_is_what_serve_uses(
    given: str | None,
    formatter: type[logging.Formatter],
    monkeypatch: pytest.MonkeyPatch,
    restored_logging: None,
) -> None:
    from api import serve

    monkeypatch.setenv("DATABASE_URL", "postgresql://unused/unused")
    monkeypatch.setenv("REGISTRY_SCHEDULER_ENABLED", "false")
    if given is None:
        monkeypatch.delenv("REGISTRY_LOG_FORMAT", raising=False)
    else:
        monkeypatch.setenv("REGISTRY_LOG_FORMAT", given)
    get_settings.cache_clear()
    try:
        app = serve.app()
        app.state.engine.dispose()
    finally:
        get_settings.cache_clear()
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logs.StderrHandler)]
    assert len(ours) == 1 and type(ours[0].formatter) is formatter


def test_one_off_commands_log_text_unless_told(
    monkeypatch: pytest.MonkeyPatch, restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from registry.cli import main

    monkeypatch.setattr("registry.cli.serve.migrated_url", lambda settings: "postgresql+psycopg://u@h/d")
    for given, formatter in ((None, logs.TextFormatter), ("json", logs.JsonFormatter)):
        if given is None:
            monkeypatch.delenv("REGISTRY_LOG_FORMAT", raising=False)
        else:
            monkeypatch.setenv("REGISTRY_LOG_FORMAT", given)
        get_settings.cache_clear()
        try:
            assert main(["migrate"]) == 0
        finally:
            get_settings.cache_clear()
        ours = [h for h in logging.getLogger().handlers if isinstance(h, logs.StderrHandler)]
        assert type(ours[0].formatter) is formatter
