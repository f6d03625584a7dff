"""What `registry serve` hands uvicorn, in its own process and in each worker process: the app with the
log format and level of the settings (registry/logs.py)."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from registry import logs
from registry.config import get_settings


def app() -> FastAPI:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format or "json")
    return create_app(settings)
