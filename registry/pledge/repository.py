"""Pledge queries; nothing here commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlmodel import Session, col, or_, select

from registry.pledge.models import Instruction, Pledge


def get_pledge(session: Session, pledge_id: UUID, *, lock: bool = False) -> Pledge | None:
    return session.get(Pledge, pledge_id, with_for_update=lock, populate_existing=lock)


def get_instruction(session: Session, instruction_id: UUID, *, lock: bool = False) -> Instruction | None:
    return session.get(Instruction, instruction_id, with_for_update=lock, populate_existing=lock)


def pending_instruction(session: Session, pledge_id: UUID) -> Instruction | None:
    query = select(Instruction).where(Instruction.pledge_id == pledge_id, Instruction.status == "pending")
    return session.exec(query).first()


def instructions_of(session: Session, pledge_ids: list[UUID]) -> list[Instruction]:
    query = (
        select(Instruction).where(col(Instruction.pledge_id).in_(pledge_ids)).order_by(col(Instruction.seq))
    )
    return list(session.exec(query))


def units_of(session: Session, pledge_ids: list[UUID]) -> list[Any]:
    """Held and frozen blocks of the pledges, by serial."""
    return list(
        session.execute(
            text("""
                SELECT h.pledge_id, ct.code AS credit_type, h.batch_id, i.project_code, i.project_type, i.vintage,
                       h.serial_start, h.serial_end, h.quantity, h.status
                  FROM holding h JOIN credit_type ct ON ct.id = h.credit_type_id JOIN issuance i ON i.id = h.batch_id
                 WHERE h.pledge_id = ANY(:ids)
                 ORDER BY h.pledge_id, h.serial_start"""),
            {"ids": pledge_ids},
        ).all()
    )


def next_registration_no(session: Session, year: int) -> str:
    n = session.execute(text("SELECT nextval('registration_no_seq')")).scalar_one()
    return f"ZY-{year}-{n:06d}"


def _scope(query: Any, *, bank: UUID | None, holder: UUID | None) -> Any:
    """Limit a query joined to `pledge` to what a bank (as pledgee) or a holder (as pledgor or borrower) sees."""
    if bank is not None:
        query = query.where(Pledge.pledgee_party_id == bank)
    if holder is not None:
        query = query.where(or_(Pledge.pledgor_party_id == holder, Pledge.borrower_party_id == holder))
    return query


def pledges_page(
    session: Session,
    *,
    bank: UUID | None,
    holder: UUID | None,
    status: str | None,
    after: UUID | None,
    limit: int,
) -> list[Pledge]:
    query = _scope(select(Pledge), bank=bank, holder=holder).order_by(col(Pledge.id)).limit(limit)
    if status is not None:
        query = query.where(Pledge.status == status)
    if after is not None:
        query = query.where(Pledge.id > after)
    return list(session.exec(query))


def instructions_page(
    session: Session,
    *,
    bank: UUID | None,
    holder: UUID | None,
    status: str | None,
    after: int | None,
    limit: int,
) -> list[Instruction]:
    """In arrival order: oldest first, the back office's queue."""
    query = select(Instruction).join(Pledge, col(Pledge.id) == col(Instruction.pledge_id))
    query = _scope(query, bank=bank, holder=holder)
    if status is not None:
        query = query.where(Instruction.status == status)
    if after is not None:
        query = query.where(col(Instruction.seq) > after)
    return list(session.exec(query.order_by(col(Instruction.seq)).limit(limit)))


def expired_pending(session: Session, now: datetime, limit: int) -> list[UUID]:
    rows = session.execute(
        text(
            "SELECT id FROM instruction WHERE status = 'pending' AND hold_expires_at <= :now "
            "ORDER BY hold_expires_at LIMIT :limit"
        ),
        {"now": now, "limit": limit},
    )
    return [r.id for r in rows]


def first_account_of(session: Session, party_id: UUID) -> UUID | None:
    return session.execute(
        text(
            "SELECT id FROM account WHERE party_id = :p AND status = 'active' ORDER BY created_at, id LIMIT 1"
        ),
        {"p": party_id},
    ).scalar_one_or_none()


def frozen_quantity(session: Session, pledge_id: UUID) -> int:
    return int(
        session.execute(
            text("SELECT coalesce(sum(quantity), 0) FROM holding WHERE pledge_id = :p AND status = 'frozen'"),
            {"p": pledge_id},
        ).scalar_one()
    )


def queue(session: Session, limit: int) -> list[Any]:
    """Pending instructions, oldest first, each with what the pledgor's account holds of the credit type:
    what the back office checks before it confirms (权属认定)."""
    return list(
        session.execute(
            text("""
                SELECT i.id, i.seq, i.type, i.quantity, i.blocks, i.reason, i.outstanding_principal,
                       i.created_at, i.hold_expires_at, i.reviewed_by, i.requested_by_operator,
                       p.id AS pledge_id, p.status AS pledge_status, p.registration_no, p.contract_no, p.principal,
                       ct.code AS credit_type, pe.name AS pledgee, po.name AS pledgor, a.number AS account_number,
                       coalesce(sum(h.quantity) FILTER (WHERE h.status = 'available'), 0) AS available,
                       coalesce(sum(h.quantity) FILTER (WHERE h.status = 'held' AND h.pledge_id = p.id), 0)
                           AS held_for_this,
                       coalesce(sum(h.quantity) FILTER (WHERE h.status = 'held' AND h.pledge_id <> p.id), 0)
                           AS held_for_others,
                       coalesce(sum(h.quantity) FILTER (WHERE h.status = 'frozen' AND h.pledge_id = p.id), 0)
                           AS frozen_for_this,
                       coalesce(sum(h.quantity) FILTER (WHERE h.status = 'frozen' AND h.pledge_id <> p.id), 0)
                           AS frozen_for_others
                  FROM instruction i
                  JOIN pledge p ON p.id = i.pledge_id
                  JOIN credit_type ct ON ct.id = p.credit_type_id
                  JOIN party pe ON pe.id = p.pledgee_party_id
                  JOIN party po ON po.id = p.pledgor_party_id
                  JOIN account a ON a.id = p.pledgor_account_id
                  LEFT JOIN holding h ON h.account_id = p.pledgor_account_id AND h.credit_type_id = p.credit_type_id
                 WHERE i.status = 'pending'
                 GROUP BY i.id, p.id, ct.code, pe.name, po.name, a.number
                 ORDER BY i.seq
                 LIMIT :limit"""),
            {"limit": limit},
        ).all()
    )


def search(
    session: Session, query: str, *, bank: UUID | None, holder: UUID | None, limit: int = 50
) -> list[Pledge]:
    """Pledges by registration number (prefix), contract number or party name (part), or a serial number
    they hold or held for a pending request; newest first, within what the caller may see."""
    like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    serial = int(query) if query.isdigit() and len(query) <= 15 else None
    found = (
        select(Pledge)
        .where(
            or_(
                col(Pledge.registration_no).ilike(like.lstrip("%")),
                col(Pledge.contract_no).ilike(like),
                text("EXISTS (SELECT 1 FROM party x WHERE x.id IN (pledge.pledgee_party_id, pledge.pledgor_party_id, "
                     "pledge.borrower_party_id) AND x.name ILIKE :like)"),
                text("EXISTS (SELECT 1 FROM holding h WHERE h.pledge_id = pledge.id "
                     "AND CAST(:serial AS bigint) BETWEEN h.serial_start AND h.serial_end)"),
            )
        )
        .params(like=like, serial=serial)
        .order_by(col(Pledge.created_at).desc())
        .limit(limit)
    )  # fmt: skip
    return list(session.exec(_scope(found, bank=bank, holder=holder)))
