from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import Column, ForeignKey, LargeBinary, Text
from sqlmodel import Field, SQLModel

from registry.base import timestamptz


class ConsoleUser(SQLModel, table=True):
    __tablename__ = "console_user"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    username: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    display_name: str = Field(sa_column=Column(Text, nullable=False))
    party_id: UUID = Field(sa_column=Column(ForeignKey("party.id"), nullable=False))
    role: str = Field(sa_column=Column(Text, nullable=False))
    password_hash: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=timestamptz())
    disabled_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))


class ConsoleSession(SQLModel, table=True):
    __tablename__ = "console_session"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    token_digest: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    user_id: UUID = Field(sa_column=Column(ForeignKey("console_user.id"), nullable=False))
    csrf_token: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=timestamptz())
    last_seen_at: datetime = Field(sa_column=timestamptz())
    expires_at: datetime = Field(sa_column=timestamptz())
    ended_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
