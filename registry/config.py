"""All configuration, read from the environment in one place (see docs/operations.md)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Defaults that the domain's functions take too when a caller (the demo, a test) passes no settings: one
# number each, so that a use case called without the setting behaves as the default registry does.
HOLD_BUSINESS_DAYS = 5  # business days to agree, then to confirm, before a request lapses
VWAP_DAYS = 20  # business days of prints in the volume-weighted average price
MATURITY_ALERT_DAYS = (30, 7, 1)  # days before maturity at which the bank is told
WEBHOOK_TIMEOUT_SECONDS = 10.0  # one deadline for a whole delivery attempt
WEBHOOK_CONCURRENCY = 4  # deliveries in flight at once, each of a different bank
RECYCLE_AFTER = 200  # documents a rendering process makes before it is replaced


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore")

    # The plain DATABASE_URL (no prefix) is what every PostgreSQL tool understands.
    # Unset: an embedded PostgreSQL (pgserver) is started in `data_dir`.
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL"))
    # What the app's requests connect as: a role granted `registry_app` (migration 0006), which cannot
    # change history. Unset: `registry_app` itself on the embedded server; DATABASE_URL's user otherwise.
    app_database_url: str | None = None
    data_dir: Path = Path(".registry-data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Public address used in links (certificate QR codes, console); defaults to http://host:port.
    public_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1, le=200)
    # Transfers that arrive while others are being written are written together, up to this many in one
    # transaction (registry/together.py); 0: each alone. Batches a process writes at once: the lanes.
    transfers_together: int = Field(default=32, ge=0, le=1000)
    transfers_together_lanes: int = Field(default=1, ge=1, le=32)
    # API keys are looked up once per request; a short cache saves a query per call,
    # at the price of a revoked key working for at most this long.
    key_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    idempotency_ttl_hours: int = Field(default=24, ge=1)
    # An unconfirmed pledge request (or top-up) lapses after this many business days; its hold is lifted.
    hold_business_days: int = Field(default=HOLD_BUSINESS_DAYS, ge=1, le=60)
    # Background jobs inside the app processes (see registry/scheduler.py); off for tests and one-off tools.
    scheduler_enabled: bool = True
    expire_holds_every_minutes: int = Field(default=5, ge=1, le=1440)
    # Valuation: VWAP window in business days, the daily revaluation time (Asia/Shanghai, after the close),
    # and the maturity reminders (days before maturity).
    vwap_days: int = Field(default=VWAP_DAYS, ge=1, le=250)
    revalue_at: str = Field(default="15:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    maturity_alert_days: str = Field(
        default=",".join(map(str, MATURITY_ALERT_DAYS)), pattern=r"^\d{1,3}(,\d{1,3})*$"
    )
    deliver_webhooks_every_seconds: int = Field(default=30, ge=1, le=3600)
    # Banks' webhooks must be public https addresses; allow loopback/private ones only for tests and demos.
    webhook_allow_private: bool = False
    # One delivery attempt in all (name lookup, connect, TLS, sending, the answer's head): a slow or
    # dripping endpoint is cut at this deadline. Deliveries in flight at once, each of a different bank.
    webhook_timeout_seconds: float = Field(default=WEBHOOK_TIMEOUT_SECONDS, gt=0, le=60)
    webhook_concurrency: int = Field(default=WEBHOOK_CONCURRENCY, ge=1, le=32)
    # Certificates are rendered in worker processes (0: in the request's thread); each worker is replaced
    # after this many documents, so a long run of renderings cannot grow memory.
    certificate_workers: int = Field(default=1, ge=0, le=16)
    certificate_recycle_after: int = Field(default=RECYCLE_AFTER, ge=1)
    # Request bodies: refused with 413 past this many bytes, counted while they are read (api/limits.py);
    # the price batch (`POST /v1/prices/trades`, up to 5,000 prints) may be larger.
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    max_batch_body_bytes: int = Field(default=8 << 20, ge=1024, le=1 << 30)
    # Reverse proxies whose X-Forwarded-For / -Proto are believed (comma-separated addresses or networks,
    # e.g. "10.0.0.5,10.1.0.0/16"; "*" for any). Empty: none, so a client is always its peer address.
    trusted_proxies: str = Field(default="", pattern=r"^[0-9A-Fa-f:.,/* ]*$")
    # PDF reports are rendered in their own worker processes (0: in the request's thread); a party may
    # have this many PDF reports rendering at once (more: 429), the process this many in all (more: 503).
    report_workers: int = Field(default=1, ge=0, le=16)
    report_pdf_per_party: int = Field(default=2, ge=1, le=100)
    report_pdf_total: int = Field(default=4, ge=1, le=1000)
    log_level: str = "INFO"
    # JSON lines (a log collector) or text (a person). Unset: JSON for `registry serve`, text for the
    # one-off commands (registry/logs.py).
    log_format: Literal["json", "text"] | None = None

    @field_validator("database_url", "app_database_url")
    @classmethod
    def _use_psycopg3(cls, value: str | None) -> str | None:
        """`postgresql://` and `postgres://` URLs are taken as they are written for every other tool."""
        if value is None or not value.strip():
            return None
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    def maturity_days(self) -> list[int]:
        return [int(d) for d in self.maturity_alert_days.split(",")]

    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
