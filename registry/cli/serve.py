"""`registry serve`, `registry migrate` and `registry demo [--serve]`."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from registry import logs
from registry.cli.common import Subcommands, actor, database, migrated_url
from registry.config import Settings, get_settings
from registry.db import APP_ROLE, as_role, release_embedded, unit_of_work

WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # noqa: S104 (what an operator may ask to listen on, not our default)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    migrated_url(settings)
    print("migrated to head")
    return 0


def _where(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings with --host/--port applied, so that printed links and QR codes name the served port."""
    host = getattr(args, "host", None) or settings.host
    port = getattr(args, "port", None) or settings.port
    return settings.model_copy(update={"host": host, "port": port})


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn believes X-Forwarded-For from 127.0.0.1 (or FORWARDED_ALLOW_IPS) unless told otherwise, and
    the throttles count clients by address: any local caller could claim a new client per guess. Only the
    proxies REGISTRY_TRUSTED_PROXIES names are believed; none by default."""
    trusted = settings.trusted_proxies.strip()
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}


def serving_environment(settings: Settings, url: str) -> dict[str, str]:
    """What the app reads from the environment, in this process or in uvicorn's worker processes: the
    database this process resolved (and, when embedded, keeps alive) — as the restricted application role
    when the server is the embedded one —, the address actually served (certificates' links and QR codes
    name it when REGISTRY_PUBLIC_URL is unset) and the log format (JSON unless told otherwise)."""
    env = {
        "DATABASE_URL": url,
        "REGISTRY_HOST": settings.host,
        "REGISTRY_PORT": str(settings.port),
        "REGISTRY_LOG_FORMAT": settings.log_format or "json",
    }
    if not settings.database_url and not settings.app_database_url:
        env["REGISTRY_APP_DATABASE_URL"] = as_role(url, APP_ROLE)
    return env


class _Stopped(Exception):
    """SIGTERM or SIGINT: stop serving, then release what this process started."""


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stopped(signal.Signals(signum).name)


@contextmanager
def _stoppable() -> Iterator[None]:
    """uvicorn shuts down gracefully on SIGTERM/SIGINT and then raises the signal again with the handler it
    found. Python's default SIGTERM handler ends the process on the spot, skipping every `finally` and
    `atexit` (the embedded PostgreSQL then outlives the registry): ours turns it into an exception."""
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def _metrics_directory(workers: int) -> Iterator[None]:
    """Several worker processes: prometheus-client's multiprocess mode, each process writing its figures
    to files in PROMETHEUS_MULTIPROC_DIR and a scrape of any worker summing them. The directory must be
    empty at start; ours is made here and removed at the end (one given by the operator is emptied)."""
    if workers <= 1:
        yield
        return
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="registry-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(folder, ignore_errors=True)
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def cmd_serve(args: argparse.Namespace, settings: Settings, *, url: str | None = None) -> int:
    import uvicorn

    try:
        with _stoppable():
            url = url or migrated_url(settings)
            settings = _where(args, settings)
            os.environ.update(serving_environment(settings, url))
            get_settings.cache_clear()  # the app reads the environment just set, in this process too
            logs.configure(settings.log_level, settings.log_format or "json")
            _banner(settings)
            with _metrics_directory(args.workers):
                uvicorn.run(
                    "api.serve:app",
                    factory=True,
                    host=settings.host,
                    port=settings.port,
                    workers=args.workers,
                    log_level=settings.log_level.lower(),
                    log_config=None,  # the app's own handlers (registry/logs.py), JSON or text
                    access_log=args.access_log,
                    **proxy_options(settings),
                )
    except _Stopped:
        pass
    finally:
        if not settings.database_url:  # stops the embedded PostgreSQL when this process was its last holder
            release_embedded(settings.data_dir)
    return 0


def _banner(settings: Settings) -> None:
    host, port = settings.host, settings.port
    print(f"registry serving at http://{host}:{port}  (API docs: http://{host}:{port}/docs, "
          f"also /redoc; metrics: /metrics)", flush=True)  # fmt: skip
    if settings.public_url is None and host in WILDCARD_HOSTS:
        print(f"warning: certificates will link to {settings.base_url()}, which no client can open; set "
              "REGISTRY_PUBLIC_URL to the address clients use", file=sys.stderr, flush=True)  # fmt: skip


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from registry import demo

    settings = _where(args, settings)
    url = migrated_url(settings)
    with database(settings, url=url) as engine, unit_of_work(engine) as session:
        loaded = demo.load(session, actor())
        if loaded:
            keys = demo.issue_keys(session, actor())
            people = demo.console_users(session, actor())
        else:
            users = demo.existing_users(session)
        sample = demo.sample_certificate(session)
    if loaded:
        _print_fresh(settings, keys, people)
    else:
        _print_existing(settings, users)
    if sample is not None:
        from registry.certificate.render import verify_url

        print("A pledge certificate anyone can verify (no key; open it in a browser):")
        print(f"  {verify_url(settings.base_url(), *sample)}")
    if args.serve:
        return cmd_serve(args, settings, url=url)
    return 0


def _print_fresh(settings: Settings, keys: list[Any], people: list[Any]) -> None:
    print("demo data loaded")
    print("API keys (shown once; send as 'Authorization: Bearer <key>'):")
    for k in keys:
        print(f"  {k.role.value:<9} {k.party}\n            {k.key}")
    print(f"Web console: {settings.base_url()}/console/ — users and passwords (shown once):")
    for person in people:
        print(f"  {person.username:<16} {person.password:<18} {person.party}")


def _print_existing(settings: Settings, users: list[Any]) -> None:
    """A second run keeps what the first made: keys are stored as digests and passwords as hashes, so
    neither can be shown again; say how to make new ones."""
    from registry import demo

    program = _program()
    print("demo data was already there: its keys and console passwords are kept (they were shown once, "
          "when the demo was loaded, and are stored only as digests).")  # fmt: skip
    print("Parties and their API keys: make a new key with")
    for spec in demo.KEYS:
        operator = f" --operator {shlex.quote(spec.operator)}" if spec.operator else ""
        print(
            f"  {program} keys create --role {spec.role.value} --party-name {shlex.quote(spec.party)}{operator}"
        )
    print(f"Web console: {settings.base_url()}/console/ — users (set a new password with "
          f"`{program} users password USERNAME`):")  # fmt: skip
    for user in users:
        state = "" if user.active else "  (disabled)"
        print(f"  {user.username:<16} {user.role:<9} {user.party}{state}")
    if os.environ.get("DATABASE_URL") or os.environ.get("REGISTRY_DATA_DIR"):
        print("  (run them with the same DATABASE_URL / REGISTRY_DATA_DIR as this command)")


def _program() -> str:
    """How this command was invoked (`.venv/bin/registry` from scripts/start), for commands to copy."""
    invoked = sys.argv[0] if sys.argv and Path(sys.argv[0]).name == "registry" else "registry"
    return shlex.quote(invoked)


def register(sub: Subcommands) -> None:
    def serve_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--host", default=None, help="default REGISTRY_HOST or 127.0.0.1")
        sp.add_argument("--port", type=int, default=None, help="default REGISTRY_PORT or 8000")
        sp.add_argument("--workers", type=int, default=1)
        sp.add_argument("--access-log", action="store_true", help="uvicorn's own access log besides the "
                        "registry's request log (it prints query strings)")  # fmt: skip

    sp = sub.add_parser("serve", help="migrate, then serve the HTTP API")
    serve_options(sp)
    sp.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sp = sub.add_parser("demo", help="load the demo data (once) and print its keys and users")
    sp.add_argument("--serve", action="store_true", help="then serve")
    serve_options(sp)
    sp.set_defaults(func=cmd_demo)
