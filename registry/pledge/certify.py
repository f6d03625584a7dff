"""What a pledge's certificate says, gathered inside the transaction that confirms the change it
describes: a confirmed change to an active pledge issues the next version, the end of a pledge revokes
it. The certificate package stores, finds, renders and verifies; what a pledge is, is known here."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlmodel import Session

from registry.certificate import service as certificates
from registry.certificate.models import Certificate, CertificateStatus
from registry.errors import InvalidState
from registry.ledger import repository as ledger_repo
from registry.ledger.models import BlockStatus
from registry.pledge import repository as pledge_repo
from registry.pledge.models import Instruction, Pledge
from registry.pledge.states import InstructionType, PledgeStatus
from registry.principal import Actor

# What each kind of confirmed change is called on the certificate.
CHANGE = {
    InstructionType.REGISTER: "registration",
    InstructionType.TOP_UP: "top_up",
    InstructionType.RELEASE: "partial_release",
    InstructionType.DISPOSE: "partial_disposal",
}


def on_confirmed(
    session: Session, actor: Actor, pledge: Pledge, instruction: Instruction
) -> Certificate | None:
    """Called with the pledge row locked, after the confirmed change is applied."""
    current = certificates.current(session, pledge.id, lock=True)
    if pledge.status == PledgeStatus.ACTIVE:
        assert pledge.registration_no is not None and instruction.id is not None
        new = certificates.Issue(
            pledge_id=pledge.id,
            registration_no=pledge.registration_no,
            credit_type_id=pledge.credit_type_id,
            instruction_id=instruction.id,
            change=CHANGE[InstructionType(instruction.type)],
            facts=_facts(session, pledge, actor.at),
        )
        return certificates.issue(session, actor, new, current)
    if pledge.status in (PledgeStatus.RELEASED, PledgeStatus.DISPOSED) and current is not None:
        certificates.retire(session, current, CertificateStatus.REVOKED, actor.at)
    return None


def _party(party: Any) -> dict[str, Any]:
    return {"name": party.name, "credit_code": party.credit_code}


def _block(b: Any, names: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """A frozen block as the certificate lists it, its project type in both languages."""
    return {
        "project_code": b.project_code,
        "project_type": b.project_type,
        "project_type_names": list(names.get(b.project_type, (b.project_type, b.project_type))),
        "vintage": b.vintage,
        "serial_start": b.serial_start,
        "serial_end": b.serial_end,
        "quantity": b.quantity,
    }


def _facts(session: Session, pledge: Pledge, at: datetime) -> dict[str, Any]:
    """Everything the certificate prints about the pledge, as it stands now. Decimals become strings."""
    roles = {"pledgee": pledge.pledgee_party_id, "pledgor": pledge.pledgor_party_id,
             "borrower": pledge.borrower_party_id}  # fmt: skip
    found, issuer = ledger_repo.parties_with_issuer(session, roles.values())
    if issuer is None:
        raise InvalidState("no exchange is registered to issue certificates: create the exchange party first")
    parties = {role: found[party_id] for role, party_id in roles.items()}
    place = ledger_repo.account_number_and_credit_type(
        session, pledge.pledgor_account_id, pledge.credit_type_id
    )
    names = ledger_repo.project_type_names(session)
    assert place is not None
    blocks = [b for b in pledge_repo.units_of(session, [pledge.id]) if b.status == BlockStatus.FROZEN]
    quantity = sum(b.quantity for b in blocks)
    valued = _valuations(session, pledge.id)
    usable = Decimal(quantity) * (1 - pledge.haircut)
    return {
        "registration_no": pledge.registration_no,
        "issuer": _party(issuer),
        "pledgee": _party(parties["pledgee"]),
        "pledgor": {**_party(parties["pledgor"]), "account_number": place.number},
        "borrower": _party(parties["borrower"]),
        "loan": {
            "contract_no": pledge.contract_no,
            "principal": str(pledge.principal),
            "outstanding_principal": str(pledge.outstanding_principal),
            "currency": pledge.currency,
            "start_date": pledge.start_date.isoformat(),
            "maturity_date": pledge.maturity_date.isoformat(),
        },
        "pboc_registration_no": pledge.pboc_registration_no,
        "credit_type": {"code": place.code, "name": place.name, "unit": place.unit},
        "quantity": quantity,
        "blocks": [_block(b, names) for b in blocks],
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
