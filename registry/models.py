"""Imports every table so that SQLModel.metadata is complete (Alembic, tests)."""

from registry.access.models import ApiKey
from registry.audit.models import AuditEvent
from registry.certificate.models import Certificate
from registry.idempotency.models import IdempotencyRecord
from registry.ledger.models import Account, CreditType, Holding, Issuance, Party, ProjectType
from registry.pledge.models import Instruction, Pledge, PledgeChain, PledgeEvent
from registry.users.models import ConsoleSession, ConsoleUser

__all__ = [
    "Account",
    "ApiKey",
    "AuditEvent",
    "Certificate",
    "ConsoleSession",
    "ConsoleUser",
    "CreditType",
    "Holding",
    "IdempotencyRecord",
    "Instruction",
    "Issuance",
    "Party",
    "Pledge",
    "PledgeChain",
    "PledgeEvent",
    "ProjectType",
]
