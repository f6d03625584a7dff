from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import Page
from registry.certificate.models import CertificateStatus


class CertificateRead(BaseModel):
    """One version of a pledge's certificate, as its bank, pledgor, borrower and the exchange see it."""

    number: str = Field(description="registration number and version, e.g. ZY-2026-000001-02")
    version: int
    status: CertificateStatus
    issued_at: datetime
    status_changed_at: datetime | None = Field(description="when it was superseded or revoked")
    credit_type: str
    quantity: int = Field(description="units pledged when this version was issued")
    sha256: str | None = Field(
        description="SHA-256 of the issued PDF (hex); null for the moments before it is first rendered"
    )
    download_url: str


class Verification(BaseModel):
    """What anyone holding a certificate (its number and verification code) may learn: nothing confidential."""

    number: str
    status: CertificateStatus
    version: int
    issued_at: datetime
    status_changed_at: datetime | None
    quantity: int
    credit_type: str
    sha256: str | None = Field(description="compare with the SHA-256 of the PDF you were given")
    latest_version: int = Field(description="the pledge's latest certificate version (this one's when valid)")
    issuer: str = Field(description="the exchange that issued the certificate")


class CertificatePage(Page[CertificateRead]):
    """A pledge's certificate versions, oldest first."""
