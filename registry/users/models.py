from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from registry.access.models import GRANTED_ROLES
from registry.base import TextEnum, one_of, timestamptz
from registry.principal import Role


class ConsoleUser(SQLModel, table=True):
    __tablename__ = "console_user"
    __table_args__ = (
        CheckConstraint("username ~ '^[a-z0-9][a-z0-9._-]{1,63}$'", name="username"),
        CheckConstraint(one_of("role", GRANTED_ROLES), name="role"),
        CheckConstraint("password_hash LIKE '$argon2id$%'", name="argon2"),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    username: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    display_name: str = Field(sa_column=Column(Text, nullable=False))
    party_id: UUID = Field(sa_column=Column(ForeignKey("party.id"), nullable=False))
    role: Role = Field(sa_column=Column(TextEnum(Role), nullable=False))
    password_hash: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=timestamptz())
    disabled_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))


class ConsoleSession(SQLModel, table=True):
    __tablename__ = "console_session"
    __table_args__ = (
        UniqueConstraint("token_digest", name="uq_console_session_token"),
        Index("ix_console_session_user", "user_id", "created_at"),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    token_digest: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    user_id: UUID = Field(sa_column=Column(ForeignKey("console_user.id"), nullable=False))
    csrf_token: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=timestamptz())
    last_seen_at: datetime = Field(sa_column=timestamptz())
    expires_at: datetime = Field(sa_column=timestamptz())
    ended_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
