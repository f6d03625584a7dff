"""Pledges and instructions: banks ask, the exchange confirms or rejects."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Body, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.auth import ActorDep, PrincipalDep
from api.deps import SessionDep, SettingsDep
from api.idempotency import IdempotencyKey, respond
from api.pagination import Cursor, Limit, decode, encode, next_cursor
from api.reads import instruction_read, instruction_reads, pledge_read, pledge_reads
from api.rendering import render_after_response
from api.routers.common import errors, uuid_cursor
from api.schemas.ledger import BlockRef
from api.schemas.pledges import (
    ConfirmBody,
    DeclineBody,
    ExternalRefs,
    InstructionCreate,
    InstructionPage,
    InstructionRead,
    PledgeCreate,
    PledgePage,
    PledgeRead,
    RejectBody,
)
from registry.errors import InvalidInput
from registry.ledger.service import Selection, SerialRange
from registry.pledge import reads, views
from registry.pledge import service as pledges
from registry.pledge.models import Instruction
from registry.pledge.states import InstructionStatus, InstructionType, PledgeStatus

router = APIRouter(prefix="/v1", tags=["pledges"])


def _selection(credit_type: str | None, quantity: int | None, blocks: list[BlockRef] | None) -> Selection:
    return Selection(
        credit_type=credit_type,
        quantity=quantity,
        blocks=[SerialRange(b.credit_type, b.serial_start, b.serial_end) for b in blocks or ()],
    )


@router.post(
    "/pledges",
    operation_id="create_pledge",
    status_code=201,
    response_model=PledgeRead,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    summary="Ask to register a pledge (joint application): a bank's request holds nothing until the pledgor "
    "consents; a pledgor's request (naming the bank) holds its units at once and waits for the bank",
)
def create_pledge(
    request: Request,
    body: PledgeCreate,
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def work() -> PledgeRead:
        refs = body.external_refs or ExternalRefs()
        made = pledges.register(
            session,
            actor,
            pledgor_account_id=body.pledgor_account_id,
            borrower_party_id=body.borrower_party_id,
            pledgee_party_id=body.pledgee_party_id,
            loan=pledges.Loan(
                body.loan.contract_no,
                body.loan.principal,
                body.loan.start_date,
                body.loan.maturity_date,
                body.loan.currency,
            ),
            collateral=_selection(
                body.collateral.credit_type, body.collateral.quantity, body.collateral.blocks
            ),
            terms=pledges.Terms(
                body.terms.max_pledge_rate,
                body.terms.warning_ratio,
                body.terms.disposal_ratio,
                body.terms.valuation_method,
                body.terms.haircut,
            ),
            pboc_registration_no=refs.pboc_registration_no,
            bank_ref=refs.bank_ref,
            hold_business_days=settings.hold_business_days,
            window_days=settings.vwap_days,
        )
        return pledge_read(views.registered_view(session, made))

    return respond(request, session, actor, idempotency_key, body, work)


@router.get(
    "/pledges",
    operation_id="list_pledges",
    response_model=PledgePage,
    responses=errors(401, 422, 503),
    summary="Pledges you may see (bank: its own; holder: as pledgor or borrower)",
)
def list_pledges(
    session: SessionDep,
    principal: PrincipalDep,
    status: PledgeStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PledgePage:
    items = reads.list_pledges(session, principal, status=status, after=uuid_cursor(cursor), limit=limit)
    return PledgePage(
        items=pledge_reads(session, items), next_cursor=next_cursor(items, limit, lambda p: str(p.id))
    )


@router.get(
    "/pledges/{pledge_id}",
    operation_id="get_pledge",
    response_model=PledgeRead,
    responses=errors(401, 404, 422, 503),
    summary="One pledge",
)
def read_pledge(pledge_id: UUID, session: SessionDep, principal: PrincipalDep) -> PledgeRead:
    return pledge_reads(session, [reads.require_pledge(session, principal, pledge_id)])[0]


@router.post(
    "/pledges/{pledge_id}/instructions",
    operation_id="request_instruction",
    status_code=201,
    response_model=InstructionRead,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    summary="Ask for a top-up (the bank, or the pledgor offering it), a release or a disposal (the bank)",
)
def create_instruction(
    request: Request,
    pledge_id: UUID,
    body: InstructionCreate,
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def work() -> InstructionRead:
        made = pledges.request(
            session,
            actor,
            pledge_id,
            kind=InstructionType(body.type),
            selection=_selection(None, body.quantity, body.blocks),
            reason=body.reason,
            outstanding_principal=body.outstanding_principal,
            to_account_id=body.to_account_id,
            hold_business_days=settings.hold_business_days,
        )
        return instruction_reads(session, [made], actor, settings.vwap_days)[0]

    return respond(request, session, actor, idempotency_key, body, work)


@router.get(
    "/instructions",
    operation_id="list_instructions",
    response_model=InstructionPage,
    responses=errors(401, 422, 503),
    summary="Instructions, oldest first; `?status=pending` is the back office's queue, "
    "`?awaiting_my_consent=true` the requests waiting for your consent",
)
def list_instructions(
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    status: InstructionStatus | None = None,
    awaiting_my_consent: bool = False,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> InstructionPage:
    items = reads.list_instructions(
        session,
        actor.principal,
        status=status,
        awaiting_me=awaiting_my_consent,
        after=_queue_cursor(cursor),
        limit=limit,
    )
    return InstructionPage(
        items=instruction_reads(session, items, actor, settings.vwap_days),
        next_cursor=encode(items[-1].seq) if len(items) == limit else None,
    )


@router.get(
    "/instructions/{instruction_id}",
    operation_id="get_instruction",
    response_model=InstructionRead,
    responses=errors(401, 404, 422, 503),
    summary="One instruction",
)
def read_instruction(
    instruction_id: UUID, session: SessionDep, actor: ActorDep, settings: SettingsDep
) -> InstructionRead:
    found = reads.require_instruction(session, actor.principal, instruction_id)
    return instruction_reads(session, [found], actor, settings.vwap_days)[0]


def _decide(
    request: Request, session: Session, actor: Any, key: str | None, body: Any, work: Any
) -> Response:
    return respond(request, session, actor, key, body, lambda: instruction_read(work()), status_code=200)


@router.post(
    "/instructions/{instruction_id}/consent",
    operation_id="consent_to_instruction",
    response_model=InstructionRead,
    responses=errors(401, 403, 404, 409, 422, 503),
    summary="Consent to a joint application (the pledgor for a bank's request, the bank for a pledgor's): "
    "the pledgor's units are held and the request goes to the exchange",
)
def consent_instruction(
    request: Request,
    instruction_id: UUID,
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return _decide(
        request,
        session,
        actor,
        idempotency_key,
        RejectBody(reason="consent"),
        lambda: pledges.consent(
            session, actor, instruction_id, hold_business_days=settings.hold_business_days
        ),
    )


@router.post(
    "/instructions/{instruction_id}/decline",
    operation_id="decline_instruction",
    response_model=InstructionRead,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    summary="Decline a joint application with a reason (the party whose consent it waits for)",
)
def decline_instruction(
    request: Request,
    instruction_id: UUID,
    body: DeclineBody,
    session: SessionDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return _decide(
        request,
        session,
        actor,
        idempotency_key,
        body,
        lambda: pledges.decline(session, actor, instruction_id, reason=body.reason),
    )


@router.post(
    "/instructions/{instruction_id}/confirm",
    operation_id="confirm_instruction",
    response_model=InstructionRead,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    summary="Confirm (exchange). A registration or top-up only within the lender's terms at today's "
    "price; a disposal needs two persons: the first confirm records the reviewed terms, a second applies "
    "exactly those (other terms are a new review)",
)
def confirm_instruction(
    request: Request,
    instruction_id: UUID,
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    background: BackgroundTasks,
    # Optional, and no `null`: a generated client then leaves the body out when it is not given.
    body: Annotated[ConfirmBody, Body(default_factory=ConfirmBody)],
    idempotency_key: IdempotencyKey = None,
) -> Response:

    def work() -> Instruction:
        done = pledges.confirm(
            session,
            actor,
            instruction_id,
            buyer_account_id=body.buyer_account_id,
            price=body.price,
            proceeds=body.proceeds,
            window_days=settings.vwap_days,
        )
        if done.status == InstructionStatus.CONFIRMED:
            render_after_response(request, background, done.pledge_id)
        return done

    return _decide(request, session, actor, idempotency_key, body, work)


@router.post(
    "/instructions/{instruction_id}/reject",
    operation_id="reject_instruction",
    response_model=InstructionRead,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    summary="Reject with a reason (exchange); held units go back to the pledgor",
)
def reject_instruction(
    request: Request,
    instruction_id: UUID,
    body: RejectBody,
    session: SessionDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return _decide(
        request,
        session,
        actor,
        idempotency_key,
        body,
        lambda: pledges.reject(session, actor, instruction_id, reason=body.reason),
    )


@router.post(
    "/instructions/{instruction_id}/cancel",
    operation_id="cancel_instruction",
    response_model=InstructionRead,
    responses=errors(401, 403, 404, 409, 422, 503),
    summary="Withdraw your own request while it waits (the party that asked)",
)
def cancel_instruction(
    request: Request,
    instruction_id: UUID,
    session: SessionDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return _decide(
        request,
        session,
        actor,
        idempotency_key,
        RejectBody(reason="cancel"),
        lambda: pledges.cancel(session, actor, instruction_id),
    )


def _queue_cursor(cursor: str | None) -> int | None:
    value = decode(cursor)
    if value is not None and not isinstance(value, int):
        raise InvalidInput("cursor", "not a cursor this API returned")
    return value
