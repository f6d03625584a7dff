"""Many rows into a table in one COPY, in the caller's transaction: what a settlement batch writes.

COPY runs every constraint and trigger an INSERT runs (the link check of the trail over the statement's
new rows, the deferred overlap and conservation checks), and needs only INSERT on the table. Rows go as
COPY text built here: each cell printed once per distinct value, text escaped as COPY reads it back."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack, suppress
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from sqlmodel import Session

_CHUNK_ROWS = 1_000
# What COPY's text format reads as a delimiter, a row end or an escape, inside a cell.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class ValuePrinter:
    """Prints each distinct value once and reuses the text: a batch prints the same accounts, statuses and
    references thousands of times. Subclasses say how a UUID and any other value print."""

    __slots__ = ("_printed", "_uuids")

    def __init__(self, printed: dict[Any, str] | None = None) -> None:
        self._printed: dict[Any, str] = dict(printed or {})
        self._uuids: dict[int, str] = {}  # by the UUID's integer: UUID's own __hash__ is Python, and slow

    def value(self, value: Any) -> str:
        kind = type(value)
        if kind is int:
            return str(value)
        if kind is UUID:
            try:
                return self._uuids[value.int]
            except KeyError:
                printed = self._uuids[value.int] = self._print_uuid(value)
                return printed
        try:
            return self._printed[value]
        except KeyError:
            printed = self._printed[value] = self._print(value)
            return printed

    def _print_uuid(self, value: UUID) -> str:
        raise NotImplementedError

    def _print(self, value: Any) -> str:
        raise NotImplementedError


class CopyText(ValuePrinter):
    """The COPY text of a cell: NULL as \\N, text escaped, UUIDs and times as PostgreSQL reads them."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__({None: "\\N"})

    def _print_uuid(self, value: UUID) -> str:
        return str(value)

    def _print(self, value: Any) -> str:
        return _cell(value)


def _cell(value: Any) -> str:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text cannot hold a NUL character")
        return value.translate(_ESCAPES)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a time without its time zone")
        return value.isoformat()
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    raise TypeError(f"no COPY text for {type(value).__name__}")


def copy_in(session: Session, statement: str, rows: Iterable[str]) -> None:
    """`statement` is `COPY table (columns) FROM STDIN`; each row its cells joined by tabs, no newline.
    Rows are sent in chunks as the iterable makes them: PostgreSQL inserts one chunk while Python makes
    the next (two cores, both busy)."""
    copy = CopyIn(session, statement)
    try:
        for row in rows:
            copy.write(row)
    except BaseException:
        copy.abort()
        raise
    copy.close()


class CopyIn:
    """One `COPY table (columns) FROM STDIN` held open while the caller makes its rows (each its cells joined
    by tabs, no newline), sent in chunks: PostgreSQL inserts one chunk while Python makes the next. Nothing
    else may use the connection until `close` (the statement completes, its triggers run) or `abort` (the
    statement fails: the caller rolls back, to a savepoint or the whole transaction)."""

    __slots__ = ("_chunk", "_copy", "_encoding", "_stack")

    def __init__(self, session: Session, statement: str) -> None:
        dbapi = session.connection().connection.dbapi_connection
        assert isinstance(dbapi, psycopg.Connection)
        self._encoding: str = dbapi.info.encoding
        self._stack: ExitStack = ExitStack()
        try:
            cursor = self._stack.enter_context(dbapi.cursor())
            self._copy: psycopg.Copy = self._stack.enter_context(cursor.copy(statement))
        except BaseException:
            self._stack.close()
            raise
        self._chunk: list[str] = []

    def write(self, row: str) -> None:
        chunk = self._chunk
        chunk.append(row)
        if len(chunk) == _CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._chunk:
            self._copy.write(("\n".join(self._chunk) + "\n").encode(self._encoding))
            self._chunk.clear()

    def close(self) -> None:
        self._flush()
        self._stack.close()

    def abort(self) -> None:
        """End the COPY as failed (PostgreSQL discards its rows; the transaction is then in error)."""
        self._chunk.clear()
        abandoned = _Abandoned()
        with suppress(_Abandoned):
            self._stack.__exit__(type(abandoned), abandoned, None)


class _Abandoned(Exception):
    """Why a COPY was ended without its rows."""
