"""Pledge queries; nothing here commits."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import text
from sqlmodel import Session, col, or_, select

from registry.base import one_of
from registry.certificate import service as certificates
from registry.db import run
from registry.ledger.models import AccountStatus, BlockStatus, CreditType
from registry.pledge.models import Instruction, Pledge
from registry.pledge.policy import PledgeScope
from registry.pledge.states import HOLDS_UNITS, OPEN, InstructionStatus, PledgeStatus
from registry.rows import Computed, columns, loaded
from registry.valuation import service as valuation

OPEN_INSTRUCTION = tuple(sorted(OPEN))  # a sequence for IN (...), in a stable order
B = BlockStatus


def get_pledge(session: Session, pledge_id: UUID) -> Pledge | None:
    return session.get(Pledge, pledge_id)


# The pledge locked first (in the CTE, whose rows are locked as the join reads them), then the instruction
# (locked as the joined row comes out): the one lock order of every pledge operation, in one round trip.
# Each row as it is after any concurrent change it waited for (FOR UPDATE re-reads a row it waited on).
# A confirmation's variant also reads the pledge's credit type's reference prices, for the kinds of request
# judged on them (a release's are all NULL, not looked up), in the statement's snapshot, taken before any
# wait for the locks: a print committed during that wait (milliseconds) is not in the judgement, though
# the valuation the confirmation writes a statement later has it. Prints are daily closes, posted by the
# exchange; the judgement is the one the exchange would have made a moment earlier.
_LOCK = f"""
    WITH p AS (SELECT pledge.*, ct.code AS credit_type_code
                 FROM pledge JOIN credit_type ct ON ct.id = pledge.credit_type_id
                WHERE pledge.id = (SELECT pledge_id FROM instruction WHERE id = %(i)s)
                  FOR UPDATE OF pledge)
    SELECT p.credit_type_code, {columns(Pledge, "p_", source="p")}, {columns(Instruction, "i_", source="i")}
           {{prices}}
      FROM p JOIN instruction i ON i.id = %(i)s
           {{reference}}
       FOR UPDATE OF i"""
_LOCK_ONLY = _LOCK.format(prices="", reference="")
_LOCK_PRICED = _LOCK.format(
    prices=", p.credit_type_id, r.vwap, r.vwap_date, r.last_close, r.last_date",  # valuation.reference_of's
    reference=f"LEFT JOIN LATERAL ({valuation.REFERENCE_SQL} WHERE ct.id = p.credit_type_id "
    f"AND {one_of('i.type', sorted(HOLDS_UNITS))}) r ON true",
)


def lock_with_instruction(session: Session, instruction_id: UUID) -> tuple[Pledge, Instruction] | None:
    """The instruction's pledge and the instruction, row-locked in that order (the instruction's pledge
    never changes), as the session's objects: loaded afresh, as a locking read must be."""
    rows = run(session, _LOCK_ONLY, {"i": instruction_id})
    return _locked(session, rows[0]) if rows else None


def lock_with_instruction_and_prices(
    session: Session, instruction_id: UUID, as_of: date, window_days: int
) -> tuple[Pledge, Instruction, valuation.Reference] | None:
    """As `lock_with_instruction`, with the pledge's credit type's reference prices as of a day (what a
    confirmation of a registration or a top-up judges it on; for other kinds, none), in the same round
    trip."""
    rows = run(session, _LOCK_PRICED, {"i": instruction_id, **valuation.reference_params(as_of, window_days)})
    if not rows:
        return None
    pledge, instruction = _locked(session, rows[0])
    return pledge, instruction, valuation.reference_of(rows[0])


# A request on a pledge: the pledge locked with its credit type's code and its instruction still waiting, if
# any (at most one: uq_instruction_one_open). The waiting one is read in the statement's snapshot, taken
# before any wait for the lock. A request that waited on one made meanwhile does not see it here, and its
# own instruction is then refused by that index (the same invalid_state problem, without the other's id);
# one that waited on a decision closing it still sees it open here, so a refusal asks `waiting_now` first.
# (at most one row: uq_instruction_one_open)
_WAITING = (
    "SELECT id, type, status FROM instruction "
    f"WHERE pledge_id = {{pledge}} AND {one_of('status', OPEN_INSTRUCTION)}"
)
_LOCK_PLEDGE = f"""
    SELECT ct.code AS credit_type_code, {columns(Pledge, "p_", source="pledge")},
           w.id AS waiting_id, w.type AS waiting_type, w.status AS waiting_status
      FROM pledge JOIN credit_type ct ON ct.id = pledge.credit_type_id
      LEFT JOIN LATERAL ({_WAITING.format(pledge="pledge.id")}) w ON true
     WHERE pledge.id = %(p)s
       FOR UPDATE OF pledge"""


class Waiting(NamedTuple):
    """A pledge's instruction still waiting for a consent or for the exchange."""

    id: UUID
    type: str
    status: str


def lock_pledge(session: Session, pledge_id: UUID) -> tuple[Pledge, Waiting | None] | None:
    """The pledge, row-locked and loaded afresh, with its credit type's code (for `credit_type_code`) and its
    waiting instruction, in one round trip."""
    rows = run(session, _LOCK_PLEDGE, {"p": pledge_id})
    if not rows:
        return None
    row = rows[0]
    pledge: Pledge = loaded(session, Pledge, row, "p_")
    session.info.setdefault(_CODES, {})[pledge.credit_type_id] = row.credit_type_code
    waiting = (
        None if row.waiting_id is None else Waiting(row.waiting_id, row.waiting_type, row.waiting_status)
    )
    return pledge, waiting


def waiting_now(session: Session, pledge_id: UUID) -> Waiting | None:
    """The pledge's waiting instruction as committed now (a statement after the pledge's lock is held)."""
    rows = run(session, _WAITING.format(pledge="%(p)s"), {"p": pledge_id})
    return Waiting(rows[0].id, rows[0].type, rows[0].status) if rows else None


def _locked(session: Session, row: Any) -> tuple[Pledge, Instruction]:
    pledge = loaded(session, Pledge, row, "p_")
    instruction = loaded(session, Instruction, row, "i_")
    # The code comes along, so that a hold needs no query for it (credit types never change their code).
    session.info.setdefault(_CODES, {})[pledge.credit_type_id] = row.credit_type_code
    return pledge, instruction


_CODES = "registry.pledge.credit_type_codes"  # Session.info: credit type id -> code, read with a pledge


def credit_type_code(session: Session, credit_type_id: int) -> str:
    """The code of a credit type: as read with a pledge in this session, else from the database."""
    known = session.info.get(_CODES, {}).get(credit_type_id)
    if known is not None:
        return str(known)
    found = session.get(CreditType, credit_type_id)
    assert found is not None
    return found.code


def get_instruction(session: Session, instruction_id: UUID, *, lock: bool = False) -> Instruction | None:
    return session.get(Instruction, instruction_id, with_for_update=lock, populate_existing=lock)


def open_pledge_for_loan(session: Session, pledgee_party_id: UUID, contract_no: str) -> Any:
    """The loan's pending or active pledge (its id and parties: whom it may be named to), if any."""
    rows = run(
        session,
        "SELECT id, pledgee_party_id, pledgor_party_id, borrower_party_id FROM pledge "
        "WHERE pledgee_party_id = %(bank)s AND contract_no = %(loan)s AND "
        + one_of("status", (PledgeStatus.PENDING, PledgeStatus.ACTIVE)),
        {"bank": pledgee_party_id, "loan": contract_no},
    )
    return rows[0] if rows else None


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


# Everything a certificate prints that is not on the pledge row, in one round trip: the issuer (the first
# exchange party registered), the three parties, the pledgor's account number, the credit type, the frozen
# blocks by serial (each with its project type's names, when the registry has them) and the pledge's
# first and latest valuations; and the pledge's current certificate, locked, which the new one supersedes.
# The columns of the pledge's first (`f_…`) and latest (`l_…`) valuation that a certificate prints.
_VALUATIONS = ", ".join(
    f"{which}.{column} AS {which}_{column}"
    for which in ("f", "l")
    for column in (
        "as_of",
        "method",
        "price",
        "price_date",
        "stale",
        "quantity",
        "collateral_value",
        "coverage_ratio",
    )
)
_FACTS = f"""
    SELECT ex.name AS issuer_name, ex.credit_code AS issuer_code,
           pe.name AS pledgee_name, pe.credit_code AS pledgee_code,
           po.name AS pledgor_name, po.credit_code AS pledgor_code,
           bo.name AS borrower_name, bo.credit_code AS borrower_code,
           a.number AS account_number, ct.code AS credit_type, ct.name AS credit_type_name, ct.unit,
           b.project_codes, b.project_types, b.names_zh, b.names_en, b.vintages, b.starts, b.ends, b.quantities,
           {_VALUATIONS}, c.*
      FROM party pe, party po, party bo, account a, credit_type ct
      LEFT JOIN LATERAL (SELECT name, credit_code FROM party WHERE kind = 'exchange'
                          ORDER BY created_at, id LIMIT 1) ex ON true
      LEFT JOIN LATERAL (
            SELECT array_agg(i.project_code ORDER BY h.serial_start) AS project_codes,
                   array_agg(i.project_type ORDER BY h.serial_start) AS project_types,
                   array_agg(coalesce(pt.name_zh, i.project_type) ORDER BY h.serial_start) AS names_zh,
                   array_agg(coalesce(pt.name_en, i.project_type) ORDER BY h.serial_start) AS names_en,
                   array_agg(i.vintage ORDER BY h.serial_start) AS vintages,
                   array_agg(h.serial_start ORDER BY h.serial_start) AS starts,
                   array_agg(h.serial_end ORDER BY h.serial_start) AS ends,
                   array_agg(h.quantity ORDER BY h.serial_start) AS quantities
              FROM holding h JOIN issuance i ON i.id = h.batch_id LEFT JOIN project_type pt ON pt.code = i.project_type
             WHERE h.pledge_id = %(pledge)s AND h.status = '{B.FROZEN}') b ON true
      LEFT JOIN LATERAL (SELECT * FROM valuation WHERE pledge_id = %(pledge)s ORDER BY id LIMIT 1) f ON true
      LEFT JOIN LATERAL (SELECT * FROM valuation WHERE pledge_id = %(pledge)s ORDER BY id DESC LIMIT 1) l ON true
      LEFT JOIN LATERAL ({certificates.LOCKED_CURRENT}) c ON true
     WHERE pe.id = %(pledgee)s AND po.id = %(pledgor)s AND bo.id = %(borrower)s AND a.id = %(account)s
       AND ct.id = %(credit_type)s"""


def certificate_facts(session: Session, pledge: Pledge) -> Any:
    """The row of _FACTS for the pledge, with its current certificate locked (None only if one of its
    parties, its account or its credit type were missing, which their foreign keys forbid)."""
    rows = run(session, _FACTS, {
        "pledge": pledge.id, "pledgee": pledge.pledgee_party_id, "pledgor": pledge.pledgor_party_id,
        "borrower": pledge.borrower_party_id, "account": pledge.pledgor_account_id,
        "credit_type": pledge.credit_type_id,
    })  # fmt: skip
    return rows[0] if rows else None


def registration_no(year: int) -> Computed:
    """The next registration number, drawn by the statement that writes it: ZY-<year>-<six digits or more>."""
    return Computed(
        "SELECT format('ZY-%%s-%%s', %(registration_year)s::int, CASE WHEN n < 1000000 "
        "THEN lpad(n::text, 6, '0') ELSE n::text END) FROM nextval('registration_no_seq') n",
        {"registration_year": year},
    )


def _scoped(query: Any, scope: PledgeScope) -> Any:
    """Limit a query joined to `pledge` to what a bank (as pledgee) or a holder (as pledgor or borrower) sees."""
    if scope.pledgee_party_id is not None:
        query = query.where(Pledge.pledgee_party_id == scope.pledgee_party_id)
    if scope.holder_party_id is not None:
        holder = scope.holder_party_id
        query = query.where(or_(Pledge.pledgor_party_id == holder, Pledge.borrower_party_id == holder))
    return query


def pledges_page(
    session: Session, scope: PledgeScope, *, status: PledgeStatus | None, after: UUID | None, limit: int
) -> list[Pledge]:
    query = _scoped(select(Pledge), scope).order_by(col(Pledge.id)).limit(limit)
    if status is not None:
        query = query.where(Pledge.status == status)
    if after is not None:
        query = query.where(Pledge.id > after)
    return list(session.exec(query))


def instructions_page(
    session: Session,
    scope: PledgeScope,
    *,
    status: InstructionStatus | None,
    consent_party_id: UUID | None = None,
    after: int | None,
    limit: int,
) -> list[Instruction]:
    """In arrival order: oldest first, the back office's queue (or a party's requests awaiting its consent)."""
    query = select(Instruction).join(Pledge, col(Pledge.id) == col(Instruction.pledge_id))
    query = _scoped(query, scope)
    if status is not None:
        query = query.where(Instruction.status == status)
    if consent_party_id is not None:
        query = query.where(Instruction.consent_party_id == consent_party_id)
    if after is not None:
        query = query.where(col(Instruction.seq) > after)
    return list(session.exec(query.order_by(col(Instruction.seq)).limit(limit)))


def lapsed_open(session: Session, now: datetime, limit: int) -> list[UUID]:
    """Instructions still waiting (for a consent or for the exchange) past their lapse time."""
    rows = session.execute(
        text(
            f"SELECT id FROM instruction WHERE {one_of('status', OPEN_INSTRUCTION)} AND hold_expires_at <= :now "
            "ORDER BY hold_expires_at LIMIT :limit"
        ),
        {"now": now, "limit": limit},
    )
    return [r.id for r in rows]


def first_account_of(session: Session, party_id: UUID) -> UUID | None:
    return session.execute(
        text(
            f"SELECT id FROM account WHERE party_id = :p AND status = '{AccountStatus.ACTIVE}' "
            "ORDER BY created_at, id LIMIT 1"
        ),
        {"p": party_id},
    ).scalar_one_or_none()


def frozen_quantity(session: Session, pledge_id: UUID) -> int:
    return units_of_pledge(session, pledge_id)[1]


def units_of_pledge(session: Session, pledge_id: UUID) -> tuple[int, int]:
    """(held, frozen) units of the pledge. Through `run`, which does not flush the session first: blocks are
    written by plain statements only, so nothing pending in the session changes the answer, while a flush
    wrote what a decision had set so far (a release's applied quantity) in an UPDATE of its own, before the
    decision's one statement wrote the instruction again."""
    row = run(
        session,
        f"""SELECT coalesce(sum(quantity) FILTER (WHERE status = '{B.HELD}'), 0) AS held,
                   coalesce(sum(quantity) FILTER (WHERE status = '{B.FROZEN}'), 0) AS frozen
              FROM holding WHERE pledge_id = %(p)s""",
        {"p": pledge_id},
    )[0]
    return int(row.held), int(row.frozen)


# Requests for the same loan queue on this transaction lock (its key: loan_lock_key; pledge/rules.py).
LOAN_LOCK_SQL = "pg_advisory_xact_lock(hashtextextended(%(loan)s, 727200002))"


def loan_lock_key(pledgee_party_id: UUID | None, contract_no: str) -> str:
    return f"{pledgee_party_id}/{contract_no}"


def registration_facts(
    session: Session,
    *,
    code: str,
    account_id: UUID,
    borrower_id: UUID,
    named_id: UUID | None,
    as_of: date,
    window_days: int,
    loan_lock: str,
) -> Any:
    """What a registration request is checked against, in one round trip: the credit type by code, the
    pledgor's account, the borrower and the bank a pledgor names (each column None when absent), and the
    credit type's reference prices as of a day; and the loan's lock taken (LOAN_LOCK_SQL), on the key
    `loan_lock`, which the request's checks then run under."""
    rows = run(
        session,
        f"""SELECT {LOAN_LOCK_SQL} AS loan_locked, t.id AS credit_type_id, a.id AS account_id,
                   a.party_id AS account_party_id, a.status AS account_status, b.id AS borrower_id,
                   b.kind AS borrower_kind, n.id AS named_id, n.kind AS named_kind,
                   r.vwap, r.vwap_date, r.last_close, r.last_date
              FROM (SELECT 1) one
              LEFT JOIN credit_type t ON t.code = %(code)s
              LEFT JOIN account a ON a.id = %(account)s
              LEFT JOIN party b ON b.id = %(borrower)s
              LEFT JOIN party n ON n.id = %(named)s::uuid
              LEFT JOIN LATERAL ({valuation.REFERENCE_SQL} WHERE ct.id = t.id) r ON true""",
        {"code": code, "account": account_id, "borrower": borrower_id, "named": named_id, "loan": loan_lock,
         **valuation.reference_params(as_of, window_days)},
    )  # fmt: skip
    return rows[0]


def queue(session: Session, limit: int) -> list[Any]:
    """Pending instructions, oldest first, each with what the pledgor's account holds of the credit type:
    what the back office checks before it confirms (权属认定)."""
    return list(
        session.execute(
            text(f"""
                SELECT i.id, i.seq, i.type, i.quantity, i.blocks, i.reason, i.outstanding_principal,
                       i.created_at, i.hold_expires_at, i.reviewed_by, i.reviewed_at, i.requested_by_operator,
                       i.review_to_account_id, i.review_price, i.review_proceeds, i.to_account_id,
                       i.consented_by, i.consented_at, ra.number AS review_to_account_number,
                       rp.name AS review_to_party,
                       p.id AS pledge_id, p.status AS pledge_status, p.registration_no, p.contract_no, p.principal,
                       p.outstanding_principal AS pledge_outstanding, p.credit_type_id, p.valuation_method,
                       p.haircut, p.max_pledge_rate, p.warning_ratio, p.disposal_ratio,
                       ct.code AS credit_type, pe.name AS pledgee, po.name AS pledgor, a.number AS account_number,
                       coalesce(sum(h.quantity) FILTER (WHERE h.status = '{B.AVAILABLE}'), 0) AS available,
                       coalesce(sum(h.quantity) FILTER (WHERE h.status = '{B.HELD}' AND h.pledge_id = p.id), 0)
                           AS held_for_this,
                       coalesce(sum(h.quantity) FILTER (WHERE h.status = '{B.HELD}' AND h.pledge_id <> p.id), 0)
                           AS held_for_others,
                       coalesce(sum(h.quantity) FILTER (WHERE h.status = '{B.FROZEN}' AND h.pledge_id = p.id), 0)
                           AS frozen_for_this,
                       coalesce(sum(h.quantity) FILTER (WHERE h.status = '{B.FROZEN}' AND h.pledge_id <> p.id), 0)
                           AS frozen_for_others
                  FROM instruction i
                  JOIN pledge p ON p.id = i.pledge_id
                  JOIN credit_type ct ON ct.id = p.credit_type_id
                  JOIN party pe ON pe.id = p.pledgee_party_id
                  JOIN party po ON po.id = p.pledgor_party_id
                  JOIN account a ON a.id = p.pledgor_account_id
                  LEFT JOIN account ra ON ra.id = i.review_to_account_id
                  LEFT JOIN party rp ON rp.id = ra.party_id
                  LEFT JOIN holding h ON h.account_id = p.pledgor_account_id AND h.credit_type_id = p.credit_type_id
                 WHERE i.status = '{InstructionStatus.PENDING}'
                 GROUP BY i.id, p.id, ct.code, pe.name, po.name, a.number, ra.number, rp.name
                 ORDER BY i.seq
                 LIMIT :limit"""),
            {"limit": limit},
        ).all()
    )


def search(session: Session, query: str, scope: PledgeScope, *, limit: int = 50) -> list[Pledge]:
    """Pledges by registration number (prefix), certificate number, contract number or party name (part),
    the pledgor's account number, a party's unified social credit code, or a serial number they hold or
    hold for a waiting request; newest first, within what the caller may see."""
    like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    # ASCII digits only: str.isdigit() also takes '²' and other digits int() refuses.
    serial = int(query) if query.isascii() and query.isdigit() and len(query) <= 15 else None
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
                text("EXISTS (SELECT 1 FROM certificate c WHERE c.pledge_id = pledge.id AND c.number = :exact)"),
                text("EXISTS (SELECT 1 FROM account a WHERE a.id = pledge.pledgor_account_id AND a.number = :exact)"),
                text("EXISTS (SELECT 1 FROM party y WHERE y.id IN (pledge.pledgee_party_id, pledge.pledgor_party_id, "
                     "pledge.borrower_party_id) AND y.credit_code = :exact)"),
            )
        )
        .params(like=like, serial=serial, exact=query.upper())
        .order_by(col(Pledge.created_at).desc())
        .limit(limit)
    )  # fmt: skip
    return list(session.exec(_scoped(found, scope)))


def units_by_pledge(session: Session, pledge_ids: list[UUID]) -> dict[UUID, tuple[int, int]]:
    """(held, frozen) units of each pledge, in one query."""
    rows = session.execute(
        text(f"""
            SELECT pledge_id, coalesce(sum(quantity) FILTER (WHERE status = '{B.HELD}'), 0) AS held,
                   coalesce(sum(quantity) FILTER (WHERE status = '{B.FROZEN}'), 0) AS frozen
              FROM holding WHERE pledge_id = ANY(:ids) GROUP BY pledge_id"""),
        {"ids": pledge_ids},
    )
    return {r.pledge_id: (int(r.held), int(r.frozen)) for r in rows}


def pledges_by_id(session: Session, pledge_ids: list[UUID]) -> list[Pledge]:
    return list(session.exec(select(Pledge).where(col(Pledge.id).in_(pledge_ids))))
