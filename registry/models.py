"""Imports every table so that SQLModel.metadata is complete (Alembic, tests/test_schema.py)."""

from registry.access.models import ApiKey
from registry.alert.models import Alert, Webhook, WebhookDelivery
from registry.audit.models import AuditEvent
from registry.certificate.models import Certificate, CertificateRendering
from registry.idempotency.models import IdempotencyRecord
from registry.ledger.models import (
    Account,
    CreditType,
    Holding,
    HoldingPendingCheck,
    Issuance,
    Party,
    ProjectType,
)
from registry.pledge.models import Instruction, Pledge, PledgeChain, PledgeEvent
from registry.ratelimit.models import RateLimit
from registry.scheduling.models import JobRun
from registry.users.models import ConsoleSession, ConsoleUser
from registry.valuation.models import TradePrice, Valuation

__all__ = [
    "Account",
    "Alert",
    "ApiKey",
    "AuditEvent",
    "Certificate",
    "CertificateRendering",
    "ConsoleSession",
    "ConsoleUser",
    "CreditType",
    "Holding",
    "HoldingPendingCheck",
    "IdempotencyRecord",
    "Instruction",
    "Issuance",
    "JobRun",
    "Party",
    "Pledge",
    "PledgeChain",
    "PledgeEvent",
    "ProjectType",
    "RateLimit",
    "TradePrice",
    "Valuation",
    "Webhook",
    "WebhookDelivery",
]
