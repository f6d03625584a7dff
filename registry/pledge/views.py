"""Pledges as callers read them: each with its blocks, its instructions, its latest certificate and
valuation, gathered for a page of pledges in a fixed number of queries (not one per pledge). The API and
the console map these views to what they show; what a pledge *is* to a reader is decided here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from registry.certificate import service as certificates
from registry.certificate.models import Certificate
from registry.ledger import repository as ledger_repo
from registry.ledger.models import BlockStatus
from registry.money import money, ratio
from registry.pledge import reads, steps
from registry.pledge.asking import Registered
from registry.pledge.models import Instruction, Pledge
from registry.valuation import service as valuation


@dataclass(frozen=True, slots=True)
class LoanView:
    """Amounts to two places, as every reader shows them (a pledge just asked for carries its request's)."""

    contract_no: str
    principal: Decimal
    outstanding_principal: Decimal
    currency: str
    start_date: date
    maturity_date: date


@dataclass(frozen=True, slots=True)
class TermsView:
    """Ratios to four places."""

    max_pledge_rate: Decimal
    warning_ratio: Decimal
    disposal_ratio: Decimal
    valuation_method: str
    haircut: Decimal


@dataclass(frozen=True, slots=True)
class PledgeView:
    pledge: Pledge
    credit_type: str
    quantity: int  # frozen: pledged
    held_quantity: int  # held: asked and consented, waiting for the exchange
    loan: LoanView
    terms: TermsView
    blocks: list[Any]  # rows of pledge.repository.units_of
    instructions: list[Instruction]
    certificate: Certificate | None
    valuation: Any | None  # the latest valuation row


def pledge_views(session: Session, pledges: list[Pledge]) -> list[PledgeView]:
    """The pledges (already checked visible to the caller) with everything a reader sees of them."""
    ids = [p.id for p in pledges]
    blocks, instructions = reads.details(session, pledges)
    valued = valuation.latest(session, ids)
    issued = certificates.latest(session, ids)
    codes = ledger_repo.credit_type_codes(session)
    return [_view(p, codes[p.credit_type_id], blocks[p.id], instructions[p.id], issued.get(p.id),
                  valued.get(p.id)) for p in pledges]  # fmt: skip


def registered_view(session: Session, made: Registered) -> PledgeView:
    """What a registration request answers. A bank's request holds nothing until the pledgor consents, so
    nothing about it needs reading back: no blocks, its one instruction, no certificate, no valuation
    (tests/test_api_pledges.py holds this to `pledge_views`). A pledgor's own request holds its units now,
    and is read as any pledge is."""
    if steps.holds(made.pledge, made.instruction):
        return pledge_views(session, [made.pledge])[0]
    return _view(made.pledge, made.credit_type, [], [made.instruction], None, None)


def _view(pledge: Pledge, credit_type: str, blocks: list[Any], instructions: list[Instruction],
          certificate: Certificate | None, valued: Any | None) -> PledgeView:  # fmt: skip
    return PledgeView(
        pledge=pledge,
        credit_type=credit_type,
        quantity=sum(b.quantity for b in blocks if b.status == BlockStatus.FROZEN),
        held_quantity=sum(b.quantity for b in blocks if b.status == BlockStatus.HELD),
        loan=LoanView(
            pledge.contract_no,
            money(pledge.principal),
            money(pledge.outstanding_principal),
            pledge.currency,
            pledge.start_date,
            pledge.maturity_date,
        ),
        terms=TermsView(
            ratio(pledge.max_pledge_rate),
            ratio(pledge.warning_ratio),
            ratio(pledge.disposal_ratio),
            pledge.valuation_method,
            ratio(pledge.haircut),
        ),
        blocks=blocks,
        instructions=instructions,
        certificate=certificate,
        valuation=valued,
    )
