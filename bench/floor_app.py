"""The framework's floor: the least a state-changing request through this stack can cost.

A FastAPI endpoint with a pydantic body that runs one `UPDATE … RETURNING` through psycopg and answers
with JSON, nothing else: no key, no idempotency, no middleware. What it does per second (beside pgbench
on the same server, in the same run) is how close to the machine's limit any endpoint of the registry can
come; bench/floor_bench.py serves it with the same uvicorn settings as the registry."""

from __future__ import annotations

import os
import threading
from typing import Any

import psycopg
from fastapi import FastAPI
from pydantic import BaseModel, Field

_local = threading.local()


def _connection() -> psycopg.Connection[Any]:
    """One connection per worker thread (what a pool would hand out), made on first use."""
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(os.environ["FLOOR_DATABASE_URL"], autocommit=True, prepare_threshold=0)
        _local.conn = conn
    return conn


class Move(BaseModel):
    account: int = Field(ge=1, le=1_000_000)
    quantity: int = Field(strict=True, ge=1, le=1_000)


class Moved(BaseModel):
    account: int
    balance: int


app = FastAPI()


@app.post("/move", response_model=Moved)
def move(body: Move) -> Moved:
    row = (
        _connection()
        .execute(
            "UPDATE floor_account SET balance = balance + %s WHERE id = %s RETURNING id, balance",
            (body.quantity, body.account),
        )
        .fetchone()
    )
    assert row is not None
    return Moved(account=row[0], balance=row[1])
