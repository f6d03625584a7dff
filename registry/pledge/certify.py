"""What a pledge's certificate says, gathered inside the transaction that confirms the change it
describes: a confirmed change to an active pledge issues the next version, the end of a pledge revokes
it. The certificate package stores, finds, renders and verifies; what a pledge is, is known here."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlmodel import Session

from registry.certificate import service as certificates
from registry.certificate.models import Certificate
from registry.errors import InvalidState
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
    if pledge.status == PledgeStatus.ACTIVE:
        assert pledge.registration_no is not None and instruction.id is not None
        row = pledge_repo.certificate_facts(session, pledge)  # with the current certificate, locked
        assert row is not None
        new = certificates.Issue(
            pledge_id=pledge.id,
            registration_no=pledge.registration_no,
            credit_type_id=pledge.credit_type_id,
            instruction_id=instruction.id,
            change=CHANGE[InstructionType(instruction.type)],
            facts=_facts(row, pledge, actor.at),
        )
        return certificates.issue(session, actor, new, certificates.locked_current(session, row))
    if pledge.status in (PledgeStatus.RELEASED, PledgeStatus.DISPOSED):
        certificates.revoke_current(session, pledge.id, actor.at)
    return None


def _party(name: str, credit_code: str | None) -> dict[str, Any]:
    return {"name": name, "credit_code": credit_code}


def _blocks(row: Any) -> list[dict[str, Any]]:
    """The frozen blocks as the certificate lists them, each project type in both languages."""
    return [
        {
            "project_code": code,
            "project_type": kind,
            "project_type_names": [zh, en],
            "vintage": vintage,
            "serial_start": start,
            "serial_end": end,
            "quantity": quantity,
        }
        for code, kind, zh, en, vintage, start, end, quantity in zip(
            row.project_codes or [], row.project_types or [], row.names_zh or [], row.names_en or [],
            row.vintages or [], row.starts or [], row.ends or [], row.quantities or [], strict=True,
        )
    ]  # fmt: skip


def _facts(row: Any, pledge: Pledge, at: datetime) -> dict[str, Any]:
    """Everything the certificate prints about the pledge (the row of its facts), as it stands now.
    Decimals become strings."""
    if row.issuer_name is None:
        raise InvalidState("no exchange is registered to issue certificates: create the exchange party first")
    blocks = _blocks(row)
    quantity = sum(b["quantity"] for b in blocks)
    usable = Decimal(quantity) * (1 - pledge.haircut)
    return {
        "registration_no": pledge.registration_no,
        "issuer": _party(row.issuer_name, row.issuer_code),
        "pledgee": _party(row.pledgee_name, row.pledgee_code),
        "pledgor": {**_party(row.pledgor_name, row.pledgor_code), "account_number": row.account_number},
        "borrower": _party(row.borrower_name, row.borrower_code),
        "loan": {
            "contract_no": pledge.contract_no,
            "principal": str(pledge.principal),
            "outstanding_principal": str(pledge.outstanding_principal),
            "currency": pledge.currency,
            "start_date": pledge.start_date.isoformat(),
            "maturity_date": pledge.maturity_date.isoformat(),
        },
        "pboc_registration_no": pledge.pboc_registration_no,
        "credit_type": {"code": row.credit_type, "name": row.credit_type_name, "unit": row.unit},
        "quantity": quantity,
        "blocks": blocks,
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
        "registration_valuation": _valuation(row, "f"),
        "valuation": _valuation(row, "l"),
        "confirmed_at": pledge.confirmed_at.isoformat() if pledge.confirmed_at else at.isoformat(),
    }


def _line_price(ratio: Decimal, outstanding: Decimal, usable_units: Decimal) -> str | None:
    if not outstanding or not usable_units:
        return None
    return str((ratio * outstanding / usable_units).quantize(Decimal("0.01"), rounding=ROUND_CEILING))


def _valuation(row: Any, which: str) -> dict[str, Any] | None:
    """The pledge's first valuation (`f`, made when its registration was confirmed) or its latest (`l`)."""
    as_of = getattr(row, f"{which}_as_of")
    if as_of is None:  # as_of is NOT NULL: no such valuation
        return None

    def get(name: str) -> Any:
        return getattr(row, f"{which}_{name}")

    return {
        "as_of": as_of.isoformat(),
        "method": get("method"),
        "price": None if get("price") is None else str(get("price")),
        "price_date": None if get("price_date") is None else get("price_date").isoformat(),
        "stale": get("stale"),
        "quantity": get("quantity"),
        "collateral_value": None if get("collateral_value") is None else str(get("collateral_value")),
        "coverage_ratio": None if get("coverage_ratio") is None else str(get("coverage_ratio")),
    }
