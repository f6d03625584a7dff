"""What a pledge, an instruction, an assessment and a certificate look like to a caller: the domain's read
models (registry/pledge/views.py) mapped to the API's schemas, for the routers and the console alike."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import Session

from api.schemas.certificates import CertificateRead
from api.schemas.ledger import BlockRef
from api.schemas.pledges import (
    AssessmentRead,
    ExternalRefs,
    InstructionRead,
    LoanRead,
    PledgedBlock,
    PledgeRead,
    ReviewRead,
    TermsRead,
)
from api.schemas.valuation import ValuationRead
from registry.certificate.models import Certificate
from registry.money import money
from registry.pledge import reads
from registry.pledge.assessment import Assessment
from registry.pledge.models import Instruction, Pledge
from registry.pledge.views import PledgeView, pledge_views
from registry.principal import Actor


def optional_money(value: Decimal | None) -> Decimal | None:
    """Two places, whether the value came from the request or from the database (the console reads these
    attributes; the JSON is written by the schemas' MoneyOut either way)."""
    return None if value is None else money(value)


def assessment_read(a: Assessment | None) -> AssessmentRead | None:
    if a is None:
        return None
    return AssessmentRead(
        quantity=a.quantity,
        price=optional_money(a.price),
        price_date=a.price_date,
        stale=a.stale,
        collateral_value=optional_money(a.collateral_value),
        pledge_rate=a.pledge_rate,
        coverage_ratio=a.coverage_ratio,
        level=a.level,
        within_terms=a.within_terms,
    )


def instruction_read(i: Instruction, judged: Assessment | None = None) -> InstructionRead:
    """The instruction's columns as they are, money to two places, with its disposal review and (for an
    open request) its valuation at today's price."""
    review = None
    if i.reviewed_by is not None and i.reviewed_at is not None and i.review_to_account_id is not None:
        review = ReviewRead(
            by=i.reviewed_by,
            at=i.reviewed_at,
            to_account_id=i.review_to_account_id,
            price=optional_money(i.review_price),
            proceeds=optional_money(i.review_proceeds),
        )
    same = {name: getattr(i, name) for name in InstructionRead.model_fields if name not in _SHAPED}
    return InstructionRead(
        **same,
        blocks=[BlockRef(**b) for b in i.blocks] if i.blocks else None,
        outstanding_principal=optional_money(i.outstanding_principal),
        price=optional_money(i.price),
        proceeds=optional_money(i.proceeds),
        review=review,
        assessment=assessment_read(judged),
    )


# The fields of InstructionRead that are not the instruction's column as it is; every other field is.
_SHAPED = frozenset({"blocks", "outstanding_principal", "price", "proceeds", "review", "assessment"})


def instruction_reads(
    session: Session, items: list[Instruction], actor: Actor, window_days: int
) -> list[InstructionRead]:
    """Instructions as read, each open registration or top-up with its valuation at today's price."""
    judged = reads.assessments(session, items, at=actor.at, window_days=window_days)
    return [instruction_read(i, judged.get(i.id)) for i in items]


def certificate_read(certificate: Certificate, credit_type: str) -> CertificateRead:
    return CertificateRead(
        number=certificate.number,
        version=certificate.version,
        status=certificate.status,
        issued_at=certificate.issued_at,
        status_changed_at=certificate.status_changed_at,
        credit_type=credit_type,
        quantity=certificate.quantity,
        sha256=certificate.sha256,
        download_url=f"/v1/pledges/{certificate.pledge_id}/certificate?version={certificate.version}",
    )


def pledge_reads(session: Session, items: list[Pledge]) -> list[PledgeRead]:
    return [pledge_read(view) for view in pledge_views(session, items)]


def pledge_read(view: PledgeView) -> PledgeRead:
    p = view.pledge
    return PledgeRead(
        id=p.id,
        status=p.status,
        registration_no=p.registration_no,
        pledgee_party_id=p.pledgee_party_id,
        pledgor_account_id=p.pledgor_account_id,
        pledgor_party_id=p.pledgor_party_id,
        borrower_party_id=p.borrower_party_id,
        credit_type=view.credit_type,
        quantity=view.quantity,
        held_quantity=view.held_quantity,
        loan=LoanRead.model_validate(view.loan, from_attributes=True),
        terms=TermsRead.model_validate(view.terms, from_attributes=True),
        external_refs=ExternalRefs(pboc_registration_no=p.pboc_registration_no, bank_ref=p.bank_ref),
        blocks=[
            PledgedBlock(
                credit_type=b.credit_type,
                batch=b.batch_id,
                project_code=b.project_code,
                project_type=b.project_type,
                vintage=b.vintage,
                serial_start=b.serial_start,
                serial_end=b.serial_end,
                quantity=b.quantity,
                status=b.status,
            )
            for b in view.blocks
        ],
        instructions=[instruction_read(i) for i in view.instructions],
        certificate=certificate_read(view.certificate, view.credit_type) if view.certificate else None,
        valuation=ValuationRead.model_validate(view.valuation, from_attributes=True)
        if view.valuation
        else None,
        created_at=p.created_at,
        hold_expires_at=p.hold_expires_at,
        confirmed_at=p.confirmed_at,
        closed_at=p.closed_at,
    )
