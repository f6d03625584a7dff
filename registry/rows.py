"""ORM rows read and written by plain statements on the hot paths (registry.db.run), then handled by the
session as if the ORM had loaded or flushed them: the ORM's own load or flush of the same rows costs
several times the statement's client CPU, and its flush a round trip per row. Nothing here commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from psycopg.types.json import Jsonb
from pydantic_core import PydanticUndefined
from sqlalchemy import inspect
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, SQLModel

from registry.base import TextEnum
from registry.db import run


def columns(model: Any, prefix: str = "", *, source: str = "", without: tuple[str, ...] = ()) -> str:
    """A select list of the model's columns (of table or alias `source`), each named `prefix` + column, but
    those `without`: what `loaded` reads back with the same `prefix` and `without`."""
    qualified = f"{source}." if source else ""
    return ", ".join(
        f"{qualified}{c.name} AS {prefix}{c.name}" for c in model.__table__.columns if c.name not in without
    )


def loaded(session: Session, model: Any, row: Any, prefix: str = "", *, without: tuple[str, ...] = ()) -> Any:
    """The session's object for a row read by a plain statement (its columns named `prefix` + column, but
    those `without`, left to load when first read, as deferred columns are): the one the session has
    (refreshed, as `populate_existing` does), else a new one, made as the ORM makes the objects it loads
    (without the model's `__init__`, which is the dearer half of the work)."""
    values = {}
    for column in model.__table__.columns:
        if column.name in without:
            continue
        value = getattr(row, prefix + column.name)
        if value is not None and isinstance(column.type, TextEnum):
            value = column.type.enum(value)  # members, as the ORM's column type makes them
        values[column.name] = value
    existing = session.identity_map.get(session.identity_key(model, values["id"]))
    if existing is not None:
        for name, value in values.items():
            set_committed_value(existing, name, value)
        return existing
    made = _blank(model)
    made.__dict__.update(values)
    make_transient_to_detached(made)
    session.add(made)
    return made


M = TypeVar("M", bound=SQLModel)


def new(model: type[M], **values: Any) -> M:
    """A new row's object, its fields' defaults filled in, made as `loaded` makes one: a table model's
    `__init__` validates nothing, and costs several times as much. For `insert_new` (or the ORM's add)."""
    for name, info in model.model_fields.items():
        if name not in values:
            default = info.get_default(call_default_factory=True)
            if default is PydanticUndefined:
                raise TypeError(f"{model.__name__}() needs {name}")
            values[name] = default
    unknown = set(values) - set(model.model_fields)
    if unknown:
        raise TypeError(f"{model.__name__}() has no field {', '.join(sorted(unknown))}")
    made: M = _blank(model)
    made.__dict__.update(values)
    return made


def _blank(model: Any) -> Any:
    """An object of the model without its `__init__`, as the ORM makes those it loads. The mappers are set
    up first, as `__init__` would have had them set up: in a new process this may be the first object."""
    if not model.__mapper__.configured:
        configure_mappers()
    return model._sa_class_manager.new_instance()


@dataclass(frozen=True, slots=True)
class Along:
    """Writes that ride in the statement saving rows (a decision's event with its chain head): its
    data-modifying CTEs, `name AS (…)`, their names and their parameters' names unique within the
    statement (so one Along a statement: a decision's event names its CTEs `head`, `event`, …). PostgreSQL
    runs each such CTE once, to completion, whether or not the statement reads it, in no promised order;
    the rows' triggers check only their own row and foreign keys are checked at the statement's end, so
    nothing here depends on that order."""

    ctes: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Computed:
    """A column's new value that the database computes in the statement writing it (a number drawn from a
    sequence), read back into the row. Its parameters' names are its own: unique within the statement."""

    sql: str
    params: Mapping[str, Any] = field(default_factory=dict)


def compute(row: SQLModel, name: str, value: Computed) -> None:
    """Set a column to what the database will compute when the row's changes are saved."""
    setattr(row, name, value)


def insert_new(session: Session, *rows: SQLModel, along: Along | None = None) -> None:
    """New rows (a pledge and its first instruction; a certificate) written in one statement, in the
    order given, with the writes `along` (if any), then taken into the session as if loaded from it.
    Identity columns are read back."""
    write(session, new=rows, along=along)


def save_changes(session: Session, *rows: SQLModel, along: Along | None = None) -> None:
    """What changed on loaded rows (a pledge and its instruction; a certificate; each locked by the caller)
    written in one statement, with the writes `along` (if any), then marked saved."""
    write(session, changed=rows, along=along)


def write(
    session: Session,
    *,
    new: Sequence[SQLModel] = (),
    changed: Sequence[SQLModel] = (),
    along: Along | None = None,
) -> None:
    """New rows inserted (in the order given), what changed on loaded rows updated, and the writes `along`:
    one statement. The rows' triggers see only their own row, so one statement checks what several would."""
    params: dict[str, Any] = {}
    ctes, back = _inserts(new, params)
    saved = _updates(changed, params, ctes, back)
    if along is not None:
        clash = params.keys() & along.params.keys()
        assert not clash, f"writes along reuse the parameters {sorted(clash)}"  # one Along a statement
        ctes.append(along.ctes)
        params.update(along.params)
    if not ctes:
        return
    found = run(session, f"WITH {', '.join(ctes)} SELECT {', '.join(back) or '1'}", params)[0]
    for n, row in enumerate(new):
        for column in row.__table__.columns:  # type: ignore[attr-defined]
            if column.identity is not None:
                setattr(row, column.name, getattr(found, f"r{n}_{column.name}"))
        make_transient_to_detached(row)
        session.add(row)  # persistent, with nothing to flush
    for n, row, diff in saved:
        for name, value in diff.items():
            now = getattr(found, f"u{n}_{name}") if isinstance(value, Computed) else value
            set_committed_value(row, name, now)
        # Clean, as after the ORM's own flush (which does this): a row left marked modified, with nothing
        # to write, still costs the next flush (at every savepoint and at commit) its whole bookkeeping.
        inspect(row)._commit_all(inspect(row).dict, session.identity_map)
    _as_flushed(session, new, inserted=True)
    _as_flushed(session, [row for _, row, _ in saved], inserted=False)


def _inserts(new: Sequence[SQLModel], params: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The CTEs inserting the rows (r0, r1, …; their parameters added to `params`) and the select list
    reading back their identity columns."""
    ctes, back = [], []
    for n, row in enumerate(new):
        table = row.__table__  # type: ignore[attr-defined]
        given = [c.name for c in table.columns if c.identity is None]
        made = [c.name for c in table.columns if c.identity is not None]
        for name in given:
            params[f"r{n}_{name}"] = _param(getattr(row, name))
        placeholders = ", ".join(f"%(r{n}_{name})s" for name in given)
        ctes.append(f"r{n} AS (INSERT INTO {table.name} ({', '.join(given)}) VALUES ({placeholders}) "
                    f"RETURNING {', '.join(made) or '1'})")  # fmt: skip
        back += [f"(SELECT {name} FROM r{n}) AS r{n}_{name}" for name in made]
    return ctes, back


def _updates(
    changed: Sequence[SQLModel], params: dict[str, Any], ctes: list[str], back: list[str]
) -> list[tuple[int, SQLModel, dict[str, Any]]]:
    """The CTEs updating what changed on the rows (u0, u1, …) appended to `ctes`, their computed columns'
    read-back to `back`; each row with a change, with its position and its changed attributes."""
    saved = []
    for n, row in enumerate(changed):
        state = inspect(row)
        values, before = state.dict, state.committed_state  # the attributes set since loaded, as they were
        diff = {name: values[name] for name in before if name in values and values[name] != before[name]}
        if not diff:
            continue
        sets, computed = [], []
        for name, value in diff.items():
            if isinstance(value, Computed):
                sets.append(f"{name} = ({value.sql})")
                params.update(value.params)
                computed.append(name)
                back.append(f"(SELECT {name} FROM u{n}) AS u{n}_{name}")
            else:
                sets.append(f"{name} = %(u{n}_{name})s")
                params[f"u{n}_{name}"] = _param(value)
        params[f"u{n}_id"] = row.id  # type: ignore[attr-defined]
        ctes.append(f"u{n} AS (UPDATE {row.__tablename__} SET {', '.join(sets)} WHERE id = %(u{n}_id)s "
                    f"RETURNING {', '.join(computed) or '1'})")  # fmt: skip
        saved.append((n, row, diff))
    return saved


def _as_flushed(session: Session, rows: Sequence[SQLModel], *, inserted: bool) -> None:
    """Recorded in the session's transaction as its own flush records what it wrote, so that rolling back
    the savepoint (or transaction) forgets a row inserted in it and reloads a row updated in it, as after
    a rollback of the ORM's own flush: objects never show what the database no longer has."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:
        return
    written = transaction._new if inserted else transaction._dirty
    for row in rows:
        written[inspect(row)] = True


def _param(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict | list):
        return Jsonb(value)
    return value
