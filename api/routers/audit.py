"""The audit trail: a unit's history, and verification of the hash chains."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool

from api.auth import PrincipalDep
from api.deps import SessionDep
from api.pagination import Cursor, Limit, encode, int_cursor
from api.routers.common import errors
from api.schemas.audit import AuditVerifyRead, BadEventRead, UnitEventRead, UnitHistoryPage, UnitPlace
from api.schemas.common import CreditTypeCode
from registry import authz
from registry.audit import service as audit
from registry.ledger.models import SERIAL_MAX

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get(
    "/units/{credit_type}/{serial}/history",
    operation_id="get_unit_history",
    response_model=UnitHistoryPage,
    responses=errors(401, 403, 404, 422, 503),
    summary="Every ownership and status change of one unit, oldest first (exchange, auditor)",
)
def unit_history(
    credit_type: Annotated[CreditTypeCode, Path()],
    serial: Annotated[int, Path(ge=1, le=SERIAL_MAX)],  # a path is text: parsed, not strict
    session: SessionDep,
    principal: PrincipalDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> UnitHistoryPage:
    rows = audit.unit_history(
        session, principal, credit_type, serial, after_id=int_cursor(cursor), limit=limit
    )
    items = [
        UnitEventRead(
            id=r.id,
            kind=r.kind,
            occurred_at=r.occurred_at,
            batch_id=r.batch_id,
            serial_start=r.serial_start,
            serial_end=r.serial_end,
            before=_place(r, "from"),
            after=_place(r, "to"),
            actor_role=r.actor_role,
            actor_party_id=r.actor_party_id,
            operator=r.operator,
            on_behalf_of=r.on_behalf_of,
            request_id=r.request_id,
            instruction_id=r.instruction_id,
            reason=r.reason,
            chain_account_id=r.chain_account_id,
            seq=r.seq,
            hash=bytes(r.hash).hex(),
        )
        for r in rows
    ]
    return UnitHistoryPage(
        credit_type=credit_type,
        serial=serial,
        items=items,
        next_cursor=encode(items[-1].id) if len(items) == limit else None,
    )


def _place(row: Any, side: str) -> UnitPlace:
    """Where the unit was (`from`) or went (`to`) in one history row."""
    return UnitPlace(
        account_id=getattr(row, f"{side}_account_id"),
        account_number=getattr(row, f"{side}_account_number"),
        party_id=getattr(row, f"{side}_party_id"),
        status=getattr(row, f"{side}_status"),
        pledge_id=getattr(row, f"{side}_pledge_id"),
    )


@router.get(
    "/audit/verify",
    operation_id="verify_audit_trail",
    response_model=AuditVerifyRead,
    responses=errors(401, 403, 503),
    summary="Recompute every hash chain and name the first bad event (exchange, auditor)",
)
async def verify(request: Request, principal: PrincipalDep) -> AuditVerifyRead:
    authz.require_role(principal, *authz.READERS_OF_EVERYTHING)
    result = await run_in_threadpool(audit.verify_chains, request.app.state.engine)
    bad = result.first_bad_event
    return AuditVerifyRead(
        events=result.events,
        chains=result.chains,
        head_hash=result.head_hash,
        ok=result.ok,
        first_bad_event=BadEventRead(
            id=bad.id,
            trail=bad.trail,
            account_id=bad.account_id,
            pledge_id=bad.pledge_id,
            seq=bad.seq,
            problem=bad.problem,
        )
        if bad
        else None,
        bad_chains=result.bad_events,
    )
