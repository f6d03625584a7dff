"""Prometheus metrics (prometheus-client): what the registry counts as it works, and the depth of its
queues, read from the database when scraped.

- Requests: `registry_http_requests_total{method,route,status}` and
  `registry_http_request_duration_seconds{method,route}` (a histogram), by route *template*
  (`/v1/pledges/{pledge_id}`), never by path, so that ids do not make new series; a path no route
  matches is `route="unmatched"`. Counted by api/observe.py.
- Transfers written together (registry/together.py): `registry_transfers_together` (a histogram of the
  batches' sizes) and `registry_transfers_together_alone_total` (transfers a batch gave back to be written
  alone).
- Jobs: `registry_job_runs_total{job,outcome}` (`ran`, `skipped`: another process had it, `failed`),
  `registry_job_duration_seconds{job}`, `registry_job_items_total{job}`,
  `registry_job_last_success_timestamp_seconds{job}`; and from the `job_run` table,
  `registry_job_last_finished_timestamp_seconds{job}` (the daily revaluation, across all instances).
- The database pool of the process: `registry_db_pool_size`, `registry_db_pool_checked_out`,
  `registry_db_pool_checked_in`, `registry_db_pool_overflow` (connections beyond the pool's size).
- Queues, at scrape time: `registry_queue_depth{queue}` for `awaiting_consent` (instructions waiting
  for the pledgor), `awaiting_exchange` (pending, in the back office's queue), `certificates_unrendered`
  (confirmed, no PDF yet), `webhooks_pending`, `webhooks_failed` (given up after 8 attempts), each an
  index-only count stopped at `QUEUE_CAP`; `registry_queue_scrape_ok` is 0 when the database did not
  answer in time (the rest of the scrape still works).

Several worker processes (`registry serve --workers N`): prometheus-client's multiprocess mode, chosen
by PROMETHEUS_MULTIPROC_DIR (set by `registry serve`): every process writes its figures to files there
and a scrape answered by any worker sums them (pool gauges over live processes). Queue depths come from
the database, so they are the same whichever worker answers."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event, text

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
QUEUE_CAP = 100_000
SCRAPE_TIMEOUT_MS = 2000

REQUESTS = Counter(
    "registry_http_requests",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "registry_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
TOGETHER = Histogram(
    "registry_transfers_together",
    "Transfers written together in one transaction (a batch of waiting requests), by the batch's size",
    buckets=(2, 4, 8, 16, 32, 64, 128),
)
TOGETHER_ALONE = Counter(
    "registry_transfers_together_alone",
    "Transfers a batch gave back to be written alone (a refused line, a replayed key, a failed batch)",
)
JOB_RUNS = Counter(
    "registry_job_runs", "Scheduled job ticks, by outcome (ran, skipped, failed)", ["job", "outcome"]
)
JOB_SECONDS = Histogram(
    "registry_job_duration_seconds",
    "Duration of job runs that did their work",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0),
)
JOB_ITEMS = Counter("registry_job_items", "Items a job handled (pledges valued, requests lapsed, …)", ["job"])
JOB_LAST_SUCCESS = Gauge(
    "registry_job_last_success_timestamp_seconds",
    "When a job last ran to its end in any process (Unix time)",
    ["job"],
    multiprocess_mode="max",
)
POOL_SIZE = Gauge("registry_db_pool_size", "Connections the pool keeps", multiprocess_mode="livesum")
POOL_CHECKED_OUT = Gauge("registry_db_pool_checked_out", "Connections in use", multiprocess_mode="livesum")
POOL_CHECKED_IN = Gauge(
    "registry_db_pool_checked_in", "Connections open and idle", multiprocess_mode="livesum"
)
POOL_OVERFLOW = Gauge(
    "registry_db_pool_overflow", "Connections open beyond the pool's size", multiprocess_mode="livesum"
)

QUEUES = """
    SELECT (SELECT count(*) FROM (SELECT 1 FROM instruction WHERE status = 'awaiting_consent' LIMIT :cap) q)
               AS awaiting_consent,
           (SELECT count(*) FROM (SELECT 1 FROM instruction WHERE status = 'pending' LIMIT :cap) q)
               AS awaiting_exchange,
           (SELECT count(*) FROM (SELECT 1 FROM certificate WHERE pdf IS NULL LIMIT :cap) q)
               AS certificates_unrendered,
           (SELECT count(*) FROM (SELECT 1 FROM webhook_delivery WHERE status = 'pending' LIMIT :cap) q)
               AS webhooks_pending,
           (SELECT count(*) FROM (SELECT 1 FROM webhook_delivery WHERE status = 'failed' LIMIT :cap) q)
               AS webhooks_failed
"""
JOB_FINISHED = "SELECT job, extract(epoch FROM max(finished_at)) AS at FROM job_run GROUP BY job"


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class QueueCollector(Collector):
    """Queue depths and the last finished daily jobs, read when scraped: a few index-only counts in one
    short read-only transaction with its own statement timeout."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "registry_queue_depth", f"Work waiting, counted up to {QUEUE_CAP}", labels=["queue"]
        )
        finished = GaugeMetricFamily(
            "registry_job_last_finished_timestamp_seconds",
            "When a once-per-fire-time job (job_run) last finished, in any instance (Unix time)",
            labels=["job"],
        )
        ok = 1
        try:
            with self.engine.connect() as conn, conn.begin():
                conn.execute(text(f"SET LOCAL statement_timeout = {SCRAPE_TIMEOUT_MS}"))
                row = conn.execute(text(QUEUES), {"cap": QUEUE_CAP}).one()
                for name, value in row._mapping.items():
                    depth.add_metric([name], float(value))
                for job, at in conn.execute(text(JOB_FINISHED)):
                    if at is not None:
                        finished.add_metric([job], float(at))
        except Exception:  # a scrape must answer even when the database does not
            log.warning("queue depths could not be read", exc_info=True)
            ok = 0
        yield depth
        yield finished
        yield GaugeMetricFamily("registry_queue_scrape_ok", "1 when the queue depths were read", value=ok)


def exposition(engine: Engine) -> bytes:
    """The text a scrape gets: this process's (or, in multiprocess mode, every process's) metrics, then
    the queue depths. The collector is made per scrape, so no registry keeps an engine alive."""
    if multiprocess_mode():
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        head = generate_latest(merged)
    else:
        head = generate_latest(REGISTRY)
    queues = CollectorRegistry(auto_describe=False)
    queues.register(QueueCollector(engine))
    return head + generate_latest(queues)


def process_exited() -> None:
    """In multiprocess mode, drop this process's live gauges (its pool) from the sums."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


_MARK = "_registry_pool_metrics"  # set on an engine once its pool is counted


def instrument_pool(engine: Engine) -> None:
    """Keep the pool gauges current from the pool's own events: connections opened and closed, checked
    out and back in (counted here: a checkin event comes before the pool takes the connection back, so
    the pool's own figures would lag one event). Once per engine, however many apps share it (tests do)."""
    if getattr(engine, _MARK, False):
        return
    setattr(engine, _MARK, True)
    pool: Any = engine.pool
    try:  # what the pool already holds (the app may be given an engine in use)
        size, out = int(pool.size()), int(pool.checkedout())
        counts = {"opened": out + int(pool.checkedin()), "out": out}
    except AttributeError:  # a pool without these figures (NullPool, StaticPool)
        size, counts = 0, {"opened": 0, "out": 0}
    lock = threading.Lock()

    def moved(key: str, by: int) -> Callable[..., None]:
        def update(*_args: object) -> None:
            with lock:
                counts[key] += by
                opened, out = counts["opened"], counts["out"]
            POOL_SIZE.set(size)
            POOL_CHECKED_OUT.set(out)
            POOL_CHECKED_IN.set(max(opened - out, 0))
            POOL_OVERFLOW.set(max(opened - size, 0))

        return update

    # On the engine, not its pool: the listeners carry over to the pool dispose() makes.
    for name, key, by in (("connect", "opened", 1), ("close", "opened", -1), ("checkout", "out", 1),
                          ("checkin", "out", -1)):  # fmt: skip
        event.listen(engine, name, moved(key, by))
    POOL_SIZE.set(size)


def job(name: str, run: Callable[[], int | None]) -> Callable[[], int | None]:
    """A scheduled callable, counted: a run that returns -1 was skipped (another process holds it), one
    that raises failed (and is logged), any other ran; a run's return value is its number of items."""

    def counted() -> int | None:
        began = time.perf_counter()
        try:
            done = run()
        except Exception:  # APScheduler logs it; counted here
            JOB_RUNS.labels(name, "failed").inc()
            raise
        if done == -1:
            JOB_RUNS.labels(name, "skipped").inc()
            return done
        JOB_RUNS.labels(name, "ran").inc()
        JOB_SECONDS.labels(name).observe(time.perf_counter() - began)
        JOB_ITEMS.labels(name).inc(done or 0)
        JOB_LAST_SUCCESS.labels(name).set(time.time())
        return done

    return counted


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "other"  # a client's invented method makes no new series
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_SECONDS.labels(method, route).observe(seconds)
