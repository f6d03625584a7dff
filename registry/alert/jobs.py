"""The alerts' scheduled work: delivering the outbox to the banks' webhooks."""

from __future__ import annotations

from sqlalchemy import Engine

from registry.alert.delivery import Dispatcher, Policy
from registry.clock import Clock
from registry.config import Settings
from registry.db import unit_of_work


def delivery_dispatcher(engine: Engine, clock: Clock, settings: Settings) -> Dispatcher:
    """Webhook deliveries: each tick claims what is due and returns; the sends run in the dispatcher's
    own pool, so a slow endpoint never holds the schedule (registry/alert/delivery.py)."""
    return Dispatcher(lambda: unit_of_work(engine), clock, Policy.from_settings(settings))
