"""The job-run table, equal to what migration 0003 creates (tests/test_schema.py); registry/scheduler.py
claims a run by inserting its row with ON CONFLICT DO NOTHING."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer, PrimaryKeyConstraint, Text
from sqlmodel import Field, SQLModel

from registry.base import timestamptz


class JobRun(SQLModel, table=True):
    """A job's run for one scheduled fire time: it happens once however many processes schedule it."""

    __tablename__ = "job_run"
    __table_args__ = (PrimaryKeyConstraint("job", "fire_time"),)

    job: str = Field(sa_column=Column(Text, nullable=False))
    fire_time: datetime = Field(sa_column=timestamptz())
    started_at: datetime = Field(sa_column=timestamptz())
    finished_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True))
    items: int | None = Field(default=None, sa_column=Column(Integer))
