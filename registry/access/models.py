from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import CheckConstraint, Column, ForeignKey, LargeBinary, Text
from sqlmodel import Field, SQLModel

from registry.base import TextEnum, one_of, timestamptz
from registry.principal import Role

# The roles an API key or a console user may be given: every role but the registry's own.
GRANTED_ROLES = tuple(r for r in Role if r is not Role.SYSTEM)


class ApiKey(SQLModel, table=True):
    """A key is `rk_<prefix>_<secret>`; only the public prefix and the SHA-256 of the whole key are kept."""

    __tablename__ = "api_key"
    __table_args__ = (CheckConstraint(one_of("role", GRANTED_ROLES), name="role"),)

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    prefix: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    digest: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    party_id: UUID = Field(sa_column=Column(ForeignKey("party.id"), nullable=False, index=True))
    role: Role = Field(sa_column=Column(TextEnum(Role), nullable=False))
    operator: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=timestamptz())
    revoked_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
