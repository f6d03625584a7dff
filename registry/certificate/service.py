"""Issuing, revoking, finding and verifying pledge certificates.

A certificate's facts are fixed inside the transaction that confirms the change they describe, so a
certificate exists exactly when its confirmation does. The PDF is rendered from those facts afterwards,
outside any lock (`render_pending`, or on first download), and stored once: every later download is the
same bytes, and the database checks that the stored digest is theirs."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from registry.certificate.models import Certificate, CertificateStatus
from registry.db import unit_of_work
from registry.errors import InvalidState, NotFound
from registry.ledger import repository as ledger_repo
from registry.ledger.models import Party, PartyKind
from registry.pledge import repository as pledge_repo
from registry.pledge.calendar import EXCHANGE_TZ
from registry.pledge.models import Instruction, Pledge
from registry.pledge.states import InstructionType, PledgeStatus
from registry.principal import Actor

# Crockford's base32: no I, L, O or U, so a code read off paper is typed back right. 12 characters = 60 bits.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})

# What each kind of confirmed change is called on the certificate.
CHANGE = {
    InstructionType.REGISTER: "registration",
    InstructionType.TOP_UP: "top_up",
    InstructionType.RELEASE: "partial_release",
    InstructionType.DISPOSE: "partial_disposal",
}

Render = Callable[[dict[str, Any]], bytes]

log = logging.getLogger(__name__)


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(code: str) -> str:
    """As printed (groups of four joined by hyphens), in any case, with O for 0 or I/L for 1."""
    return code.upper().replace("-", "").replace(" ", "").translate(_READ_AS)


# --- issuing (inside the confirming transaction; the pledge row is locked by the caller) -----------


def on_confirmed(
    session: Session, actor: Actor, pledge: Pledge, instruction: Instruction
) -> Certificate | None:
    """A confirmed change to an active pledge issues the next version; the end of a pledge revokes it."""
    current = _current(session, pledge.id, lock=True)
    if pledge.status == PledgeStatus.ACTIVE:
        return _issue(session, actor, pledge, instruction, current)
    if pledge.status in (PledgeStatus.RELEASED, PledgeStatus.DISPOSED) and current is not None:
        _retire(session, current, CertificateStatus.REVOKED, actor.at)
    return None


def _issue(
    session: Session, actor: Actor, pledge: Pledge, instruction: Instruction, current: Certificate | None
) -> Certificate:
    assert pledge.registration_no is not None
    version = 1 if current is None else current.version + 1
    if current is not None:
        _retire(session, current, CertificateStatus.SUPERSEDED, actor.at)
    number = f"{pledge.registration_no}-{version:02d}"
    code = new_code()
    facts = _facts(session, pledge, actor.at)
    content = {
        "number": number,
        "version": version,
        "previous": current.number if current is not None else None,
        "change": CHANGE[InstructionType(instruction.type)],
        "verification_code": code,
        "issued_at": actor.at.isoformat(),
        "issue_date": actor.at.astimezone(EXCHANGE_TZ).date().isoformat(),
        **facts,
    }
    certificate = Certificate(
        number=number,
        pledge_id=pledge.id,
        version=version,
        status=CertificateStatus.VALID,
        instruction_id=instruction.id,
        issued_at=actor.at,
        credit_type_id=pledge.credit_type_id,
        quantity=facts["quantity"],
        verification_code=code,
        content=content,
    )
    session.add(certificate)
    session.flush()
    return certificate


def _retire(session: Session, certificate: Certificate, status: CertificateStatus, at: datetime) -> None:
    certificate.status = status
    certificate.status_changed_at = at
    session.flush()


def _issuer(session: Session) -> Party:
    """The exchange that keeps the registry issues every certificate."""
    party = session.exec(
        select(Party).where(Party.kind == PartyKind.EXCHANGE).order_by(col(Party.created_at), col(Party.id))
    ).first()
    if party is None:
        raise InvalidState("no exchange is registered to issue certificates: create the exchange party first")
    return party


def _party(party: Party) -> dict[str, Any]:
    return {"name": party.name, "credit_code": party.credit_code}


def _facts(session: Session, pledge: Pledge, at: datetime) -> dict[str, Any]:
    """Everything the certificate prints about the pledge, as it stands now. Decimals become strings."""
    parties = {
        role: ledger_repo.get_party(session, party_id)
        for role, party_id in (
            ("pledgee", pledge.pledgee_party_id),
            ("pledgor", pledge.pledgor_party_id),
            ("borrower", pledge.borrower_party_id),
        )
    }
    account = ledger_repo.get_account(session, pledge.pledgor_account_id)
    credit_type = ledger_repo.get_credit_type_by_id(session, pledge.credit_type_id)
    names = ledger_repo.project_type_names(session)
    assert account is not None and credit_type is not None and all(parties.values())
    blocks = [b for b in pledge_repo.units_of(session, [pledge.id]) if b.status == "frozen"]
    quantity = sum(b.quantity for b in blocks)
    valued = _valuations(session, pledge.id)
    usable = Decimal(quantity) * (1 - pledge.haircut)
    return {
        "registration_no": pledge.registration_no,
        "issuer": _party(_issuer(session)),
        "pledgee": _party(parties["pledgee"]),  # type: ignore[arg-type]
        "pledgor": {**_party(parties["pledgor"]), "account_number": account.number},  # type: ignore[arg-type]
        "borrower": _party(parties["borrower"]),  # type: ignore[arg-type]
        "loan": {
            "contract_no": pledge.contract_no,
            "principal": str(pledge.principal),
            "outstanding_principal": str(pledge.outstanding_principal),
            "currency": pledge.currency,
            "start_date": pledge.start_date.isoformat(),
            "maturity_date": pledge.maturity_date.isoformat(),
        },
        "pboc_registration_no": pledge.pboc_registration_no,
        "credit_type": {"code": credit_type.code, "name": credit_type.name, "unit": credit_type.unit},
        "quantity": quantity,
        "blocks": [
            {
                "project_code": b.project_code,
                "project_type": b.project_type,
                "project_type_names": list(names.get(b.project_type, (b.project_type, b.project_type))),
                "vintage": b.vintage,
                "serial_start": b.serial_start,
                "serial_end": b.serial_end,
                "quantity": b.quantity,
            }
            for b in blocks
        ],
        "terms": {
            "max_pledge_rate": str(pledge.max_pledge_rate),
            "warning_ratio": str(pledge.warning_ratio),
            "disposal_ratio": str(pledge.disposal_ratio),
            "valuation_method": pledge.valuation_method,
            "haircut": str(pledge.haircut),
        },
        # The reference price at which coverage would touch each line, for the current collateral.
        "warning_price": _line_price(pledge.warning_ratio, pledge.outstanding_principal, usable),
        "disposal_price": _line_price(pledge.disposal_ratio, pledge.outstanding_principal, usable),
        "registration_valuation": valued[0],
        "valuation": valued[1],
        "confirmed_at": pledge.confirmed_at.isoformat() if pledge.confirmed_at else at.isoformat(),
    }


def _line_price(ratio: Decimal, outstanding: Decimal, usable_units: Decimal) -> str | None:
    if not outstanding or not usable_units:
        return None
    return str((ratio * outstanding / usable_units).quantize(Decimal("0.01"), rounding=ROUND_CEILING))


def _valuations(session: Session, pledge_id: UUID) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The pledge's first valuation (made when its registration was confirmed) and its latest one."""
    rows = session.execute(
        text("""
            (SELECT id, as_of, method, price, price_date, stale, quantity, collateral_value, coverage_ratio
               FROM valuation WHERE pledge_id = :p ORDER BY id LIMIT 1)
            UNION ALL
            (SELECT id, as_of, method, price, price_date, stale, quantity, collateral_value, coverage_ratio
               FROM valuation WHERE pledge_id = :p ORDER BY id DESC LIMIT 1)"""),
        {"p": pledge_id},
    ).all()
    if not rows:
        return None, None
    as_dicts = [
        {
            "as_of": r.as_of.isoformat(),
            "method": r.method,
            "price": None if r.price is None else str(r.price),
            "price_date": None if r.price_date is None else r.price_date.isoformat(),
            "stale": r.stale,
            "quantity": r.quantity,
            "collateral_value": None if r.collateral_value is None else str(r.collateral_value),
            "coverage_ratio": None if r.coverage_ratio is None else str(r.coverage_ratio),
        }
        for r in rows
    ]
    return as_dicts[0], as_dicts[-1]


# --- finding ----------------------------------------------------------------------------------------


def _current(session: Session, pledge_id: UUID, *, lock: bool = False) -> Certificate | None:
    query = (
        select(Certificate)
        .options(defer(Certificate.pdf))  # type: ignore[arg-type]
        .where(Certificate.pledge_id == pledge_id)
        .order_by(col(Certificate.version).desc())
        .limit(1)
    )
    if lock:
        query = query.with_for_update()
    return session.exec(query).first()


def versions(
    session: Session, pledge: Pledge, *, after_version: int | None = None, limit: int | None = None
) -> list[Certificate]:
    """Every version of a pledge's certificate, oldest first, or a page of them after `after_version` (the
    caller has checked who may see it)."""
    query = (
        select(Certificate)
        .options(defer(Certificate.pdf))  # type: ignore[arg-type]
        .where(Certificate.pledge_id == pledge.id)
        .order_by(col(Certificate.version))
    )
    if after_version is not None:
        query = query.where(col(Certificate.version) > after_version)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def latest(session: Session, pledge_ids: list[UUID]) -> dict[UUID, Certificate]:
    rows = session.exec(
        select(Certificate)
        .options(defer(Certificate.pdf))  # type: ignore[arg-type]
        .where(col(Certificate.pledge_id).in_(pledge_ids))
        .order_by(col(Certificate.pledge_id), col(Certificate.version).desc())
        .ext(distinct_on(col(Certificate.pledge_id)))
    )
    return {c.pledge_id: c for c in rows}


def require(session: Session, pledge: Pledge, version: int | None = None) -> Certificate:
    """The pledge's latest certificate, or the version asked for (the caller has checked who may see it)."""
    if version is None:
        found = _current(session, pledge.id)
    else:
        found = session.exec(
            select(Certificate)
            .options(defer(Certificate.pdf))  # type: ignore[arg-type]
            .where(Certificate.pledge_id == pledge.id, Certificate.version == version)
        ).first()
    if found is None:
        raise NotFound("certificate", pledge.id if version is None else f"{pledge.id} version {version}")
    return found


def by_number(session: Session, number: str) -> Certificate | None:
    """For the registry's own tools (no one's authority is checked here)."""
    return session.exec(
        select(Certificate).options(defer(Certificate.pdf)).where(Certificate.number == number)  # type: ignore[arg-type]
    ).first()


@dataclass(frozen=True, slots=True)
class Verified:
    certificate: Certificate
    latest_version: int
    issuer: str  # the exchange that issued it, as the certificate names it


def verify(session: Session, number: str, code: str) -> Verified | None:
    """The certificate, if the number exists and the code is its code; None either way otherwise."""
    found = session.exec(
        select(Certificate)
        .options(defer(Certificate.pdf), defer(Certificate.content))  # type: ignore[arg-type]
        .where(Certificate.number == number)
    ).first()
    given = normalize_code(code).encode()
    expected = (found.verification_code if found is not None else "0" * CODE_LENGTH).encode()
    # Constant time, and the same work for an unknown number as for a wrong code.
    if not hmac.compare_digest(given, expected) or found is None:
        return None
    row = session.execute(
        text("""
            SELECT (SELECT max(version) FROM certificate WHERE pledge_id = :p) AS latest,
                   content -> 'issuer' ->> 'name' AS issuer
              FROM certificate WHERE id = :c"""),
        {"p": found.pledge_id, "c": found.id},
    ).one()
    return Verified(found, row.latest, row.issuer or "")


# --- the PDF ----------------------------------------------------------------------------------------


def stored_pdf(session: Session, certificate_id: UUID) -> bytes | None:
    pdf: bytes | None = session.execute(
        text("SELECT pdf FROM certificate WHERE id = :id"), {"id": certificate_id}
    ).scalar_one()
    return pdf


def store_pdf(session: Session, certificate_id: UUID, pdf: bytes, at: datetime) -> bytes:
    """Keep the first rendering; a concurrent one that lost the race gets the stored bytes back."""
    won = session.execute(
        text("""
            UPDATE certificate SET pdf = :pdf, sha256 = encode(sha256(:pdf), 'hex'), rendered_at = :at
             WHERE id = :id AND pdf IS NULL RETURNING id"""),
        {"id": certificate_id, "pdf": pdf, "at": at},
    ).first()
    if won is not None:
        return pdf
    stored = stored_pdf(session, certificate_id)
    assert stored is not None
    return stored


def pdf_for(session: Session, certificate: Certificate, render: Render, at: datetime) -> bytes:
    """The certificate's PDF: the stored one, or rendered now and stored (the first download after a crash
    that lost the background rendering)."""
    stored = stored_pdf(session, certificate.id)
    if stored is not None:
        return stored
    return store_pdf(session, certificate.id, render(certificate.content), at)


# A certificate whose rendering failed this often is left to the sweep no more (a download, or
# `registry certificates render`, still tries it): a document that breaks the renderer every time must
# not take the sweep's turn from the others, which are tried first.
GIVE_UP_AFTER = 5


def render_pending(
    engine: Engine,
    render: Render,
    now: Callable[[], datetime],
    *,
    pledge_id: UUID | None = None,
    issued_before: datetime | None = None,
    limit: int = 50,
    give_up_after: int | None = None,
) -> int:
    """Render certificates that have no PDF yet, each outside any transaction, and store them; returns how
    many were stored. A rendering that fails (any exception) is counted against its certificate and the
    next one is rendered all the same."""
    with unit_of_work(engine) as session:
        todo = session.execute(
            text("""
                SELECT c.id, c.number, c.content FROM certificate c
                  LEFT JOIN certificate_rendering r ON r.certificate_id = c.id
                 WHERE c.pdf IS NULL
                   AND (CAST(:pledge AS uuid) IS NULL OR c.pledge_id = :pledge)
                   AND (CAST(:before AS timestamptz) IS NULL OR c.issued_at < :before)
                   AND (CAST(:give_up AS integer) IS NULL OR coalesce(r.failures, 0) < :give_up)
                 ORDER BY coalesce(r.failures, 0), c.issued_at LIMIT :limit"""),
            {"pledge": pledge_id, "before": issued_before, "give_up": give_up_after, "limit": limit},
        ).all()
    stored = 0
    for row in todo:
        try:
            pdf = render(row.content)
            with unit_of_work(engine) as session:
                store_pdf(session, row.id, pdf, now())
            stored += 1
        except Exception as exc:  # this certificate's problem, not the next one's
            log.exception("certificate %s could not be rendered", row.number)
            with unit_of_work(engine) as session:
                session.execute(
                    text("""
                        INSERT INTO certificate_rendering (certificate_id, failures, last_failed_at, last_error)
                        VALUES (:id, 1, :at, :error)
                        ON CONFLICT (certificate_id) DO UPDATE
                           SET failures = certificate_rendering.failures + 1, last_failed_at = EXCLUDED.last_failed_at,
                               last_error = EXCLUDED.last_error"""),
                    {"id": row.id, "at": now(), "error": type(exc).__name__},
                )  # fmt: skip
    return stored


def sweep_job(
    engine: Engine, render: Render, now: Callable[[], datetime], grace: timedelta
) -> Callable[[], int]:
    """For the scheduler: certificates whose rendering after confirmation did not happen (a crash)."""

    def run() -> int:
        return render_pending(engine, render, now, issued_before=now() - grace, give_up_after=GIVE_UP_AFTER)

    return run
