"""Issuances, transfers, retirements and holdings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api import together
from api.auth import ActorDep, PrincipalDep
from api.deps import SessionDep
from api.idempotency import IdempotencyKey, Written, claim_of, respond
from api.pagination import Cursor, Limit, next_cursor
from api.routers.common import errors, pair_cursor, uuid_cursor
from api.schemas.common import CreditTypeCode
from api.schemas.ledger import (
    HoldingRead,
    HoldingsPage,
    HoldingTotal,
    IssuanceCreate,
    IssuancePage,
    IssuanceRead,
    MovedBlockRead,
    RetirementCreate,
    RetirementRead,
    TransferBatchCreate,
    TransferBatchRead,
    TransferCreate,
    TransferRead,
)
from registry.ledger import reads as ledger_reads
from registry.ledger import service as ledger
from registry.ledger import settlement
from registry.ledger.models import Issuance
from registry.ledger.service import Movement, Selection, SerialRange
from registry.principal import Actor
from registry.together import Alone, Combiner

router = APIRouter(prefix="/v1", tags=["ledger"])


def issuance_read(batch: Issuance, credit_type: str) -> IssuanceRead:
    return IssuanceRead(
        id=batch.id,
        credit_type=credit_type,
        project_code=batch.project_code,
        project_type=batch.project_type,
        vintage=batch.vintage,
        quantity=batch.quantity,
        serial_start=batch.serial_start,
        serial_end=batch.serial_end,
        account_id=batch.account_id,
        issued_at=batch.issued_at,
    )


def moved(movement: Movement) -> list[MovedBlockRead]:
    return [
        MovedBlockRead(
            credit_type=b.credit_type,
            batch_id=b.batch_id,
            serial_start=b.serial_start,
            serial_end=b.serial_end,
            quantity=b.quantity,
        )
        for b in movement.blocks
    ]


def selection(body: TransferCreate | RetirementCreate) -> Selection:
    return Selection(
        credit_type=body.credit_type,
        quantity=body.quantity,
        blocks=[SerialRange(b.credit_type, b.serial_start, b.serial_end) for b in body.blocks or ()],
    )


@router.post(
    "/issuances",
    operation_id="issue_credits",
    status_code=201,
    response_model=IssuanceRead,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    summary="Issue a batch of credits into an account (exchange)",
)
def create_issuance(
    request: Request,
    body: IssuanceCreate,
    session: SessionDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def work() -> IssuanceRead:
        batch = ledger.issue(
            session,
            actor,
            credit_type=body.credit_type,
            project_code=body.project_code,
            project_type=body.project_type,
            vintage=body.vintage,
            quantity=body.quantity,
            account_id=body.account_id,
        )
        return issuance_read(batch, body.credit_type)

    return respond(request, session, actor, idempotency_key, body, work)


@router.get(
    "/issuances",
    operation_id="list_issuances",
    response_model=IssuancePage,
    responses=errors(401, 403, 404, 422, 503),
    summary="Issuance batches (exchange, auditor)",
)
def list_issuances(
    session: SessionDep,
    principal: PrincipalDep,
    credit_type: CreditTypeCode | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> IssuancePage:
    items = ledger_reads.list_issuances(
        session, principal, credit_type=credit_type, after=uuid_cursor(cursor), limit=limit
    )
    codes = {ct.id: ct.code for ct in ledger_reads.list_credit_types(session, principal)}
    return IssuancePage(
        items=[issuance_read(b, codes[b.credit_type_id]) for b in items],
        next_cursor=next_cursor(items, limit, lambda b: str(b.id)),
    )


@router.get(
    "/issuances/{issuance_id}",
    operation_id="get_issuance",
    response_model=IssuanceRead,
    responses=errors(401, 403, 404, 422, 503),
    summary="One issuance batch (exchange, auditor)",
)
def read_issuance(issuance_id: UUID, session: SessionDep, principal: PrincipalDep) -> IssuanceRead:
    batch = ledger_reads.require_issuance(session, principal, issuance_id)
    codes = {ct.id: ct.code for ct in ledger_reads.list_credit_types(session, principal)}
    return issuance_read(batch, codes[batch.credit_type_id])


@router.post(
    "/transfers",
    operation_id="transfer_units",
    status_code=201,
    response_model=TransferRead,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    summary="Move available units between accounts (exchange)",
)
async def create_transfer(
    request: Request, body: TransferCreate, actor: ActorDep, idempotency_key: IdempotencyKey = None
) -> Response:
    # `async`, with no session among its dependencies: a transfer written together with others waits on the
    # event loop and costs no thread; one written alone takes a thread and a unit of work here.
    combiner: Combiner[together.Transfer, bytes] | None = request.app.state.transfers_together
    if combiner is None or not ledger.may_transfer(actor.principal):
        # A caller who may not transfer is refused alone, at once: never queued, never in a batch it would fail.
        return await run_in_threadpool(transfer_alone, request, body, actor, idempotency_key)
    line = settlement.Line(body.from_account_id, body.to_account_id, selection(body), actor=actor)
    claim = claim_of(request, actor, idempotency_key, body)
    async with combiner.turn(together.Transfer(actor, line, claim)) as outcome:
        if isinstance(outcome, Alone):
            return await run_in_threadpool(transfer_alone, request, body, actor, idempotency_key)
    return Response(outcome, status_code=201, media_type="application/json")


def transfer_alone(
    request: Request, body: TransferCreate, actor: Actor, idempotency_key: str | None
) -> Response:
    with request.app.state.unit_of_work() as session:

        def work() -> TransferRead:
            movement = ledger.transfer(
                session,
                actor,
                from_account_id=body.from_account_id,
                to_account_id=body.to_account_id,
                selection=selection(body),
            )
            return transfer_read(body.from_account_id, body.to_account_id, movement)

        return respond(request, session, actor, idempotency_key, body, work)


def transfer_read(from_account_id: UUID, to_account_id: UUID, movement: Movement) -> TransferRead:
    return TransferRead(
        from_account_id=from_account_id,
        to_account_id=to_account_id,
        quantity=movement.quantity,
        blocks=moved(movement),
    )


def transfer_json(line: settlement.Line, movement: Movement) -> bytes:
    """The answer of a transfer written together with others: what it would have been alone."""
    return transfer_read(line.from_account_id, line.to_account_id, movement).model_dump_json().encode()


@router.post(
    "/transfers/batch",
    operation_id="settle_transfers",
    status_code=201,
    response_model=TransferBatchRead,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    summary="A day's settled trades as one batch of transfers (exchange): every line applies, in order, "
    "or none does and the problem lists each failing line",
)
def create_transfer_batch(
    request: Request,
    body: TransferBatchCreate,
    session: SessionDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def work() -> Written:
        lines = [
            settlement.Line(t.from_account_id, t.to_account_id, selection(t), t.ref) for t in body.transfers
        ]
        return Written(batch_json(lines, settlement.settle(session, actor, lines)))

    return respond(request, session, actor, idempotency_key, body, work)


def batch_json(lines: Sequence[settlement.Line], movements: Sequence[Movement]) -> str:
    """The TransferBatchRead of a settled batch, written straight as JSON: byte for byte what the model's
    model_dump_json writes (tests/test_settlement.py holds the two alike), ~5 times faster for the
    ~10,000 results and ~30,000 blocks of a day's batch. UUIDs and codes print without escapes."""
    ids: dict[UUID, str] = {}

    def uuid(value: UUID) -> str:
        try:
            return ids[value]
        except KeyError:
            printed = ids[value] = str(value)
            return printed

    codes: dict[str, str] = {}
    results: list[str] = []
    total = 0
    for n, (line, movement) in enumerate(zip(lines, movements, strict=True), start=1):
        quantity = 0
        blocks = []
        for b in movement.blocks:
            code = codes.get(b.credit_type) or codes.setdefault(b.credit_type, json.dumps(b.credit_type))
            q = b.serial_end - b.serial_start + 1
            quantity += q
            blocks.append(f'{{"credit_type":{code},"batch_id":"{uuid(b.batch_id)}","serial_start":{b.serial_start},'
                          f'"serial_end":{b.serial_end},"quantity":{q}}}')  # fmt: skip
        total += quantity
        results.append(f'{{"quantity":{quantity},"blocks":[{",".join(blocks)}],'
                       f'"from_account_id":"{uuid(line.from_account_id)}","to_account_id":"{uuid(line.to_account_id)}",'
                       f'"line":{n},"ref":{json.dumps(line.ref, ensure_ascii=False)}}}')  # fmt: skip
    return f'{{"transfers":{len(results)},"quantity":{total},"results":[{",".join(results)}]}}'


@router.post(
    "/retirements",
    operation_id="retire_units",
    status_code=201,
    response_model=RetirementRead,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    summary="Retire available units (exchange)",
)
def create_retirement(
    request: Request,
    body: RetirementCreate,
    session: SessionDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def work() -> RetirementRead:
        movement = ledger.retire(
            session, actor, account_id=body.account_id, selection=selection(body), reason=body.reason
        )
        return RetirementRead(
            account_id=body.account_id, reason=body.reason, quantity=movement.quantity, blocks=moved(movement)
        )

    return respond(request, session, actor, idempotency_key, body, work)


@router.get(
    "/accounts/{account_id}/holdings",
    operation_id="get_holdings",
    response_model=HoldingsPage,
    responses=errors(401, 404, 422, 503),
    summary="An account's blocks and totals per credit type and status",
)
def read_holdings(
    account_id: UUID, session: SessionDep, principal: PrincipalDep, limit: Limit = 100, cursor: Cursor = None
) -> HoldingsPage:
    result = ledger_reads.holdings(session, principal, account_id, after=pair_cursor(cursor), limit=limit)
    return HoldingsPage(
        account_id=account_id,
        items=[
            HoldingRead(
                credit_type=r.credit_type,
                batch=r.batch_id,
                project_code=r.project_code,
                project_type=r.project_type,
                vintage=r.vintage,
                serial_start=r.serial_start,
                serial_end=r.serial_end,
                quantity=r.quantity,
                status=r.status,
                pledge_id=r.pledge_id,
            )
            for r in result.blocks
        ],
        next_cursor=next_cursor(result.blocks, limit, lambda r: [r.credit_type_id, r.serial_start]),
        totals=[
            HoldingTotal(credit_type=t.credit_type, status=t.status, quantity=t.quantity, blocks=t.blocks)
            for t in result.totals
        ],
    )
