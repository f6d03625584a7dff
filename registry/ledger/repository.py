"""Ledger queries. Hot paths are plain SQL (one round trip each); nothing here commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlmodel import Session, col, select

from registry.db import run
from registry.ledger.blocks import Block, Segment
from registry.ledger.models import (
    SERIAL_MAX,
    Account,
    AccountStatus,
    BlockStatus,
    CreditType,
    Issuance,
    Party,
    PartyKind,
)

_BLOCK_COLS = "id, credit_type_id, batch_id, serial_start, serial_end, account_id, status, pledge_id"


@dataclass(frozen=True, slots=True)
class LockedAccount:
    id: UUID
    party_id: UUID
    status: str
    audit_seq: int
    audit_head: bytes | None


@dataclass(frozen=True, slots=True)
class State:
    """Where units are: an account, a status and (for held and frozen units) a pledge."""

    account_id: UUID
    status: str
    pledge_id: UUID | None = None


def _block(row: Any) -> Block:
    return Block(
        row.id,
        row.credit_type_id,
        row.batch_id,
        row.serial_start,
        row.serial_end,
        row.account_id,
        row.status,
        row.pledge_id,
    )


def get_credit_type(session: Session, code: str) -> CreditType | None:
    return session.exec(select(CreditType).where(CreditType.code == code)).first()


def credit_type_codes(session: Session) -> dict[int, str]:
    rows = run(session, "SELECT id, code FROM credit_type", {})
    return {row.id: row.code for row in rows}


def get_party(session: Session, party_id: UUID) -> Party | None:
    return session.get(Party, party_id)


def party_names(session: Session, party_ids: Iterable[UUID]) -> dict[UUID, str]:
    rows = session.execute(text("SELECT id, name FROM party WHERE id = ANY(:ids)"), {"ids": list(party_ids)})
    return {r.id: r.name for r in rows}


def get_party_by_credit_code(session: Session, credit_code: str) -> Party | None:
    return session.exec(select(Party).where(Party.credit_code == credit_code)).first()


def get_party_by_name(session: Session, name: str) -> Party | None:
    return session.exec(select(Party).where(Party.name == name)).first()


def get_account(session: Session, account_id: UUID) -> Account | None:
    return session.get(Account, account_id)


def account_places(session: Session, account_ids: Iterable[UUID]) -> dict[UUID, Any]:
    """Each account's number and its holder's name: where units are, as a page names it."""
    rows = session.execute(
        text("""
            SELECT a.id, a.number, p.name AS party_name
              FROM account a JOIN party p ON p.id = a.party_id WHERE a.id = ANY(:ids)"""),
        {"ids": list(account_ids)},
    )
    return {r.id: r for r in rows}


def project_type_names(session: Session) -> dict[str, tuple[str, str]]:
    """code -> (Chinese name, English name)."""
    return {r.code: (r.name_zh, r.name_en) for r in session.execute(text("SELECT * FROM project_type"))}


def get_account_by_number(session: Session, number: str) -> Account | None:
    return session.exec(select(Account).where(Account.number == number)).first()


def account_ids_by_number(session: Session, numbers: Sequence[str]) -> dict[str, UUID]:
    """The ids of the accounts among `numbers` (those the registry does not have are absent)."""
    found = session.execute(
        select(Account.number, Account.id).where(col(Account.number).in_(list(numbers)))
    ).all()
    return {number: account_id for number, account_id in found}


def account_by_number_and_credit_code(session: Session, number: str, credit_code: str) -> Any:
    return session.execute(
        text(f"""
            SELECT a.id, a.number, a.party_id, p.name AS party_name
              FROM account a JOIN party p ON p.id = a.party_id
             WHERE a.number = :n AND p.credit_code = :c AND a.status = '{AccountStatus.ACTIVE}'"""),
        {"n": number, "c": credit_code},
    ).first()


def get_issuance(session: Session, issuance_id: UUID) -> Issuance | None:
    return session.get(Issuance, issuance_id)


def next_account_number(session: Session) -> str:
    return str(
        session.execute(
            text("SELECT 'RA' || lpad(nextval('account_number_seq')::text, 10, '0')")
        ).scalar_one()
    )


@dataclass(frozen=True, slots=True)
class MoveCall:
    """What one call of registry_move takes out of its source: a quantity (lowest serials first), ranges
    (sorted, disjoint), or everything in the source state (of one credit type, or of all)."""

    credit_type: str | None  # the code: the database resolves it (None: every type, with `everything`)
    quantity: int | None = None
    ranges: Sequence[tuple[int, int]] = ()
    everything: bool = False


_MOVE = """
    SELECT credit_type, batch_id, serial_start, serial_end, refusal
      FROM registry_move(%(kind)s, %(sa)s, %(ss)s, %(sp)s, %(ta)s, %(ts)s, %(tp)s, %(ct)s::text, %(q)s::bigint,
                         %(starts)s::bigint[], %(ends)s::bigint[], %(every)s, %(role)s, %(party)s, %(key)s,
                         %(operator)s, %(behalf)s, %(request)s, %(instruction)s, %(reason)s, %(at)s,
                         %(active)s::uuid[])"""


def move(
    session: Session,
    actor: Any,
    kind: Any,
    source: State,
    target: State,
    call: MoveCall,
    *,
    reason: str | None,
    require_active: Sequence[UUID],
) -> list[Any]:
    """One movement of units with its audit events, in one round trip (migrations 0012, 0014)."""
    principal = actor.principal
    return run(
        session,
        _MOVE,
        {
            "kind": kind.value, "sa": source.account_id, "ss": source.status, "sp": source.pledge_id,
            "ta": target.account_id, "ts": target.status, "tp": target.pledge_id,
            "ct": call.credit_type, "q": call.quantity,
            "starts": [r[0] for r in call.ranges], "ends": [r[1] for r in call.ranges],
            "every": call.everything, "role": principal.role.value, "party": principal.party_id,
            "key": principal.key_id, "operator": principal.operator, "behalf": actor.on_behalf_of,
            "request": actor.request_id, "instruction": actor.instruction_id, "reason": reason,
            "at": actor.at, "active": list(require_active),
        },
    )  # fmt: skip


_LOCK_ACCOUNTS = (
    "SELECT id, party_id, status, audit_seq, audit_head FROM account "
    "WHERE id = ANY(%(ids)s::uuid[]) ORDER BY id FOR NO KEY UPDATE"
)


def lock_accounts(session: Session, account_ids: Sequence[UUID]) -> dict[UUID, LockedAccount]:
    """Row-lock the accounts, in id order so that two transactions never wait on each other in a cycle.

    Every change to an account's blocks holds its account's lock: the lock is what makes
    'read the blocks, then rewrite them' safe, and it also guards the account's audit chain head.
    NO KEY UPDATE, not UPDATE: rows that merely reference the account (a new pledge, a new block) take
    KEY SHARE locks, which must not queue behind (or deadlock with) the owner's lock."""
    rows = run(session, _LOCK_ACCOUNTS, {"ids": sorted(set(account_ids))})
    return {r.id: LockedAccount(r.id, r.party_id, r.status, r.audit_seq, r.audit_head) for r in rows}


def allocate_serials(session: Session, credit_type_id: int, quantity: int) -> int | None:
    """Reserve `quantity` serials of the type; returns the first, or None when too few are left.
    The row lock this takes orders concurrent issuances of one type."""
    start = session.execute(
        text(
            "UPDATE credit_type SET next_serial = next_serial + :q "
            "WHERE id = :ct AND next_serial + :q <= :limit RETURNING next_serial - :q"
        ),
        {"q": quantity, "ct": credit_type_id, "limit": SERIAL_MAX + 1},
    ).scalar_one_or_none()
    return None if start is None else int(start)


def available_blocks(session: Session, pairs: Sequence[tuple[UUID, int]]) -> list[Block]:
    """The available blocks of each (account, credit type), by serial: what a settlement batch plays on.
    The caller holds the accounts' locks, so nothing else changes them meanwhile."""
    if not pairs:
        return []
    rows = session.execute(
        text(f"""
            SELECT {_BLOCK_COLS} FROM holding
             WHERE (account_id, credit_type_id) IN (SELECT * FROM unnest(CAST(:a AS uuid[]), CAST(:ct AS smallint[])))
               AND status = '{BlockStatus.AVAILABLE}'
             ORDER BY account_id, credit_type_id, serial_start"""),
        {"a": [p[0] for p in pairs], "ct": [p[1] for p in pairs]},
    )
    return [_block(r) for r in rows]


def rewrite_blocks(
    session: Session,
    target: State,
    updates: list[tuple[int, int, int]],
    new_rows: list[tuple[Segment, State]],
) -> None:
    """In one statement: each updated block shrinks to its taken segment and moves to `target`, and the
    other segments become new rows. Overlaps are checked at commit (the exclusion constraint is deferred)."""
    if not updates and not new_rows:
        return
    session.execute(
        text("""
            WITH moved AS (
                UPDATE holding h SET serial_start = v.s, serial_end = v.e,
                       account_id = :a, status = :st, pledge_id = CAST(:p AS uuid)
                  FROM unnest(CAST(:ids AS bigint[]), CAST(:ss AS bigint[]), CAST(:es AS bigint[])) AS v(id, s, e)
                 WHERE h.id = v.id
            )
            INSERT INTO holding (credit_type_id, batch_id, serial_start, serial_end, account_id, status, pledge_id)
            SELECT * FROM unnest(CAST(:n_ct AS smallint[]), CAST(:n_b AS uuid[]), CAST(:n_s AS bigint[]),
                                 CAST(:n_e AS bigint[]), CAST(:n_a AS uuid[]), CAST(:n_st AS text[]),
                                 CAST(:n_p AS uuid[]))"""),
        {
            "a": target.account_id,
            "st": target.status,
            "p": target.pledge_id,
            "ids": [u[0] for u in updates],
            "ss": [u[1] for u in updates],
            "es": [u[2] for u in updates],
            "n_ct": [seg.credit_type_id for seg, _ in new_rows],
            "n_b": [seg.batch_id for seg, _ in new_rows],
            "n_s": [seg.serial_start for seg, _ in new_rows],
            "n_e": [seg.serial_end for seg, _ in new_rows],
            "n_a": [st.account_id for _, st in new_rows],
            "n_st": [st.status for _, st in new_rows],
            "n_p": [st.pledge_id for _, st in new_rows],
        },
    )


def insert_blocks(session: Session, rows: list[tuple[Segment, State]]) -> None:
    """New blocks only (an issuance lands this way)."""
    if rows:
        rewrite_blocks(session, rows[0][1], [], rows)


def holdings_page(
    session: Session, account_id: UUID, *, after: tuple[int, int] | None, limit: int
) -> list[Any]:
    return list(
        session.execute(
            text("""
                SELECT h.credit_type_id, ct.code AS credit_type, h.batch_id, i.project_code, i.project_type, i.vintage,
                       h.serial_start, h.serial_end, h.quantity, h.status, h.pledge_id
                  FROM holding h JOIN credit_type ct ON ct.id = h.credit_type_id JOIN issuance i ON i.id = h.batch_id
                 WHERE h.account_id = :a
                   AND (CAST(:ct AS smallint) IS NULL OR (h.credit_type_id, h.serial_start) > (:ct, :s))
                 ORDER BY h.credit_type_id, h.serial_start
                 LIMIT :limit"""),
            {
                "a": account_id,
                "ct": after[0] if after else None,
                "s": after[1] if after else None,
                "limit": limit,
            },
        ).all()
    )


def holding_totals(session: Session, account_id: UUID) -> list[Any]:
    return list(
        session.execute(
            text("""
                SELECT ct.code AS credit_type, h.status, sum(h.quantity)::bigint AS quantity, count(*) AS blocks
                  FROM holding h JOIN credit_type ct ON ct.id = h.credit_type_id
                 WHERE h.account_id = :a
                 GROUP BY ct.code, h.status ORDER BY ct.code, h.status"""),
            {"a": account_id},
        ).all()
    )


def _page(session: Session, model: Any, *, where: list[Any], after: UUID | None, limit: int) -> list[Any]:
    """Keyset page over a table with a uuid `id`: stable under concurrent inserts."""
    query = select(model).where(*where).order_by(col(model.id)).limit(limit)
    if after is not None:
        query = query.where(model.id > after)
    return list(session.exec(query))


def parties_page(session: Session, *, party_id: UUID | None, after: UUID | None, limit: int) -> list[Party]:
    return _page(session, Party, where=[Party.id == party_id] if party_id else [], after=after, limit=limit)


def accounts_page(
    session: Session, *, party_id: UUID | None, after: UUID | None, limit: int
) -> list[Account]:
    where = [Account.party_id == party_id] if party_id else []
    return _page(session, Account, where=where, after=after, limit=limit)


def issuances_page(
    session: Session, *, credit_type_id: int | None, after: UUID | None, limit: int
) -> list[Issuance]:
    where = [Issuance.credit_type_id == credit_type_id] if credit_type_id is not None else []
    return _page(session, Issuance, where=where, after=after, limit=limit)


def credit_types(session: Session, *, after: int | None = None, limit: int | None = None) -> list[CreditType]:
    """In the order they were added; all of them, or a page after the id `after`."""
    query = select(CreditType).order_by(col(CreditType.id))
    if after is not None:
        query = query.where(col(CreditType.id) > after)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def exchange_name(session: Session) -> str:
    """The exchange that keeps the registry (the first exchange party), as documents name their issuer."""
    name = session.execute(
        text(f"SELECT name FROM party WHERE kind = '{PartyKind.EXCHANGE}' ORDER BY created_at, id LIMIT 1")
    ).scalar_one_or_none()
    return str(name) if name else "—"
