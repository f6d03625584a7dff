"""Issuing, revoking, finding and verifying pledge certificates.

A certificate's facts are fixed inside the transaction that confirms the change they describe, so a
certificate exists exactly when its confirmation does; what it says of the pledge is gathered by
registry/pledge/certify.py, which knows pledges (this module knows certificates only). The PDF is
rendered from those facts afterwards, outside any lock (`render_pending`, or on first download), and
stored once: every later download is the same bytes, and the database checks that the stored digest is
theirs."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import defer
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from registry import rows
from registry.calendar import exchange_day
from registry.certificate.models import Certificate, CertificateStatus
from registry.db import run, unit_of_work
from registry.errors import NotFound
from registry.principal import Actor

# Crockford's base32: no I, L, O or U, so a code read off paper is typed back right. 12 characters = 60 bits.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})

Render = Callable[[dict[str, Any]], bytes]

log = logging.getLogger(__name__)


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(code: str) -> str:
    """As printed (groups of four joined by hyphens), in any case, with O for 0 or I/L for 1."""
    return code.upper().replace("-", "").replace(" ", "").translate(_READ_AS)


# --- issuing (inside the confirming transaction; the pledge row is locked by the caller) -----------


@dataclass(frozen=True, slots=True)
class Issue:
    """A new version of a pledge's certificate: what registry/pledge/certify.py decided and gathered."""

    pledge_id: UUID
    registration_no: str
    credit_type_id: int
    instruction_id: UUID
    change: str  # registration | top_up | partial_release | partial_disposal
    facts: dict[str, Any]  # everything printed about the pledge, decimals as strings


# A pledge's current certificate, locked: the statement to read it alone, and its columns (each `c_…`)
# for a statement that reads it beside other things, in one round trip (registry/pledge/repository.py).
_NOT_LOCKED = ("pdf",)  # the document: read only if asked for
LOCKED_CURRENT = (
    f"SELECT {rows.columns(Certificate, 'c_', without=_NOT_LOCKED)} FROM certificate "
    "WHERE pledge_id = %(pledge)s ORDER BY version DESC LIMIT 1 FOR UPDATE"
)


def locked_current(session: Session, row: Any) -> Certificate | None:
    """The certificate of a row with LOCKED_CURRENT's columns (all None: the pledge has none yet), its
    document left out (read only if asked for)."""
    if row is None or row.c_id is None:
        return None
    return rows.loaded(session, Certificate, row, "c_", without=_NOT_LOCKED)  # type: ignore[no-any-return]


def issue(session: Session, actor: Actor, new: Issue, previous: Certificate | None) -> Certificate:
    """The next version, superseding `previous` (the current one, locked by the caller)."""
    version = 1 if previous is None else previous.version + 1
    if previous is not None:
        retire(session, previous, CertificateStatus.SUPERSEDED, actor.at)
    number = f"{new.registration_no}-{version:02d}"
    code = new_code()
    content = {
        "number": number,
        "version": version,
        "previous": previous.number if previous is not None else None,
        "change": new.change,
        "verification_code": code,
        "issued_at": actor.at.isoformat(),
        "issue_date": exchange_day(actor.at).isoformat(),
        **new.facts,
    }
    certificate = rows.new(
        Certificate,
        number=number,
        pledge_id=new.pledge_id,
        version=version,
        status=CertificateStatus.VALID,
        instruction_id=new.instruction_id,
        issued_at=actor.at,
        credit_type_id=new.credit_type_id,
        quantity=new.facts["quantity"],
        verification_code=code,
        content=content,
    )
    rows.insert_new(session, certificate)
    return certificate


def revoke_current(session: Session, pledge_id: UUID, at: datetime) -> None:
    """The pledge's valid certificate (at most one: uq_certificate_one_valid), if any, revoked in one
    statement (the caller holds the pledge's row lock, under which its certificates are issued); the
    session's object for it, if it has one, shows the revocation."""
    revoked = run(
        session,
        f"UPDATE certificate SET status = '{CertificateStatus.REVOKED}', status_changed_at = %(at)s "
        f"WHERE pledge_id = %(pledge)s AND status = '{CertificateStatus.VALID}' RETURNING id",
        {"pledge": pledge_id, "at": at},
    )
    for row in revoked:
        known = session.identity_map.get(session.identity_key(Certificate, row.id))
        if known is not None:
            set_committed_value(known, "status", CertificateStatus.REVOKED)
            set_committed_value(known, "status_changed_at", at)


def retire(session: Session, certificate: Certificate, status: CertificateStatus, at: datetime) -> None:
    certificate.status = status
    certificate.status_changed_at = at
    rows.save_changes(session, certificate)


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
    session: Session, pledge_id: UUID, *, after_version: int | None = None, limit: int | None = None
) -> list[Certificate]:
    """Every version of a pledge's certificate, oldest first, or a page of them after `after_version` (the
    caller has checked who may see it)."""
    query = (
        select(Certificate)
        .options(defer(Certificate.pdf))  # type: ignore[arg-type]
        .where(Certificate.pledge_id == pledge_id)
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


def require(session: Session, pledge_id: UUID, version: int | None = None) -> Certificate:
    """The pledge's latest certificate, or the version asked for (the caller has checked who may see it)."""
    if version is None:
        found = _current(session, pledge_id)
    else:
        found = session.exec(
            select(Certificate)
            .options(defer(Certificate.pdf))  # type: ignore[arg-type]
            .where(Certificate.pledge_id == pledge_id, Certificate.version == version)
        ).first()
    if found is None:
        raise NotFound("certificate", pledge_id if version is None else f"{pledge_id} version {version}")
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
