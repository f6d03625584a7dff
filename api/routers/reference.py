"""Parties, registry accounts and credit types: the exchange keeps them, others read their own."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.auth import ActorDep, PrincipalDep
from api.deps import SessionDep
from api.idempotency import IdempotencyKey, respond
from api.pagination import Cursor, Limit, next_cursor
from api.routers.common import errors, int_cursor, text_cursor, uuid_cursor
from api.schemas.ledger import (
    AccountCreate,
    AccountPage,
    AccountRead,
    CreditTypeCreate,
    CreditTypePage,
    CreditTypeRead,
    PartyCreate,
    PartyPage,
    PartyRead,
    ProjectTypeCreate,
    ProjectTypePage,
    ProjectTypeRead,
)
from api.schemas.pledges import AccountLookupRead, PartyLookupRead
from registry.ledger import reads as ledger_reads
from registry.ledger import service as ledger
from registry.ledger.models import Account, CreditType, Party, PartyKind

router = APIRouter(prefix="/v1", tags=["reference"])


def party_read(party: Party) -> PartyRead:
    return PartyRead.model_validate(party, from_attributes=True)


def account_read(account: Account) -> AccountRead:
    return AccountRead.model_validate(account, from_attributes=True)


def credit_type_read(ct: CreditType) -> CreditTypeRead:
    return CreditTypeRead(
        code=ct.code, name=ct.name, unit=ct.unit, serials_issued=ct.next_serial - 1, created_at=ct.created_at
    )


@router.post(
    "/parties",
    operation_id="create_party",
    status_code=201,
    response_model=PartyRead,
    responses=errors(401, 403, 409, 413, 422, 503),
    summary="Register a party (exchange)",
)
def create_party(
    request: Request,
    body: PartyCreate,
    session: SessionDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return respond(
        request,
        session,
        actor,
        idempotency_key,
        body,
        lambda: party_read(
            ledger.create_party(
                session, actor, name=body.name, kind=PartyKind(body.kind), credit_code=body.credit_code
            )
        ),
    )


@router.get(
    "/parties",
    operation_id="list_parties",
    response_model=PartyPage,
    responses=errors(401, 422, 503),
    summary="Parties (exchange and auditor: all; others: their own)",
)
def list_parties(
    session: SessionDep, principal: PrincipalDep, limit: Limit = 100, cursor: Cursor = None
) -> PartyPage:
    items = ledger_reads.list_parties(session, principal, after=uuid_cursor(cursor), limit=limit)
    return PartyPage(
        items=[party_read(p) for p in items], next_cursor=next_cursor(items, limit, lambda p: str(p.id))
    )


@router.get(
    "/parties/lookup",
    operation_id="lookup_party",
    response_model=PartyLookupRead,
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="Find a borrower by its unified social credit code (bank): its party id, name and kind; else 404",
)
def lookup_party(
    session: SessionDep,
    actor: ActorDep,
    credit_code: Annotated[
        str, Query(min_length=18, max_length=18, description="the party's unified social credit code")
    ],
) -> PartyLookupRead:
    found = ledger_reads.lookup_party(session, actor.principal, credit_code=credit_code, now=actor.at)
    return PartyLookupRead(id=found.id, name=found.name, kind=found.kind)


@router.get(
    "/parties/{party_id}",
    operation_id="get_party",
    response_model=PartyRead,
    responses=errors(401, 404, 422, 503),
    summary="One party",
)
def read_party(party_id: UUID, session: SessionDep, principal: PrincipalDep) -> PartyRead:
    return party_read(ledger_reads.require_party(session, principal, party_id))


@router.post(
    "/accounts",
    operation_id="create_account",
    status_code=201,
    response_model=AccountRead,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    summary="Open a registry account for a party (exchange)",
)
def create_account(
    request: Request,
    body: AccountCreate,
    session: SessionDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return respond(
        request,
        session,
        actor,
        idempotency_key,
        body,
        lambda: account_read(ledger.create_account(session, actor, party_id=body.party_id)),
    )


@router.get(
    "/accounts",
    operation_id="list_accounts",
    response_model=AccountPage,
    responses=errors(401, 422, 503),
    summary="Registry accounts (exchange and auditor: all; others: their own)",
)
def list_accounts(
    session: SessionDep,
    principal: PrincipalDep,
    party_id: UUID | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> AccountPage:
    items = ledger_reads.list_accounts(
        session, principal, party_id=party_id, after=uuid_cursor(cursor), limit=limit
    )
    return AccountPage(
        items=[account_read(a) for a in items], next_cursor=next_cursor(items, limit, lambda a: str(a.id))
    )


@router.get(
    "/accounts/lookup",
    operation_id="lookup_account",
    response_model=AccountLookupRead,
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="Find a pledgor's account from its number and its holder's unified social credit code (bank): "
    "both must match, else 404; nothing of the account's holdings is shown",
)
def lookup_account(
    session: SessionDep,
    actor: ActorDep,
    number: Annotated[str, Query(min_length=1, max_length=32, description="the registry account number")],
    credit_code: Annotated[
        str, Query(min_length=18, max_length=18, description="the holder's unified social credit code")
    ],
) -> AccountLookupRead:
    found = ledger_reads.lookup_account(
        session, actor.principal, number=number, credit_code=credit_code, now=actor.at
    )
    return AccountLookupRead(
        id=found.id, number=found.number, party_id=found.party_id, party_name=found.party_name
    )


@router.get(
    "/accounts/{account_id}",
    operation_id="get_account",
    response_model=AccountRead,
    responses=errors(401, 404, 422, 503),
    summary="One account",
)
def read_account(account_id: UUID, session: SessionDep, principal: PrincipalDep) -> AccountRead:
    return account_read(ledger_reads.require_account(session, principal, account_id))


@router.post(
    "/credit-types",
    operation_id="create_credit_type",
    status_code=201,
    response_model=CreditTypeRead,
    responses=errors(401, 403, 409, 413, 422, 503),
    summary="Add a kind of environmental right (exchange)",
)
def create_credit_type(
    request: Request,
    body: CreditTypeCreate,
    session: SessionDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return respond(
        request,
        session,
        actor,
        idempotency_key,
        body,
        lambda: credit_type_read(
            ledger.create_credit_type(session, actor, code=body.code, name=body.name, unit=body.unit)
        ),
    )


@router.get(
    "/credit-types",
    operation_id="list_credit_types",
    response_model=CreditTypePage,
    responses=errors(401, 422, 503),
    summary="Credit types the registry keeps, in the order they were added",
)
def list_credit_types(
    session: SessionDep, principal: PrincipalDep, limit: Limit = 100, cursor: Cursor = None
) -> CreditTypePage:
    items = ledger_reads.list_credit_types(session, principal, after=int_cursor(cursor), limit=limit)
    return CreditTypePage(
        items=[credit_type_read(ct) for ct in items], next_cursor=next_cursor(items, limit, lambda ct: ct.id)
    )


@router.post(
    "/project-types",
    operation_id="create_project_type",
    status_code=201,
    response_model=ProjectTypeRead,
    responses=errors(401, 403, 409, 413, 422, 503),
    summary="Name a project type code in Chinese and English (exchange): pages and certificates show it so",
)
def create_project_type(
    request: Request,
    body: ProjectTypeCreate,
    session: SessionDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return respond(
        request,
        session,
        actor,
        idempotency_key,
        body,
        lambda: ProjectTypeRead.model_validate(
            ledger.create_project_type(
                session, actor, code=body.code, name_zh=body.name_zh, name_en=body.name_en
            ),
            from_attributes=True,
        ),
    )


@router.get(
    "/project-types",
    operation_id="list_project_types",
    response_model=ProjectTypePage,
    responses=errors(401, 422, 503),
    summary="Project types and their names, by code",
)
def list_project_types(
    session: SessionDep, principal: PrincipalDep, limit: Limit = 100, cursor: Cursor = None
) -> ProjectTypePage:
    items = ledger.list_project_types(session, principal, after=text_cursor(cursor), limit=limit)
    return ProjectTypePage(
        items=[ProjectTypeRead.model_validate(p, from_attributes=True) for p in items],
        next_cursor=next_cursor(items, limit, lambda p: p.code),
    )
