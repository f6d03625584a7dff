"""`Idempotency-Key` on state-changing POSTs: the same key and body replay the first response."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Protocol

from fastapi import Header, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlmodel import Session

from api.deps import finish
from registry.errors import InvalidInput
from registry.idempotency import service as idempotency
from registry.principal import Actor

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Any unique string (a UUID is best). A retry with the same key and body returns the "
        "first response and does nothing more; with another body it is refused (409).",
    ),
]


class Body(Protocol):
    """What a response is made of: a model, or its JSON already written (a settlement batch's answer)."""

    def model_dump_json(self) -> str: ...


class Written:
    """A response body already written as the response model would write it."""

    __slots__ = ("json",)

    def __init__(self, json: str) -> None:
        self.json = json

    def model_dump_json(self) -> str:
        return self.json


def respond(
    request: Request,
    session: Session,
    actor: Actor,
    key: str | None,
    body: BaseModel,
    work: Callable[[], Body],
    *,
    status_code: int = 201,
) -> Response:
    claim = claim_of(request, actor, key, body)
    if claim is None:
        content = work().model_dump_json()
        finish(session)
        return Response(content, status_code=status_code, media_type="application/json")
    stored = idempotency.claim(session, claim)
    if stored is not None:
        finish(session)
        return Response(
            stored.body,
            status_code=stored.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    payload = work().model_dump_json().encode()
    idempotency.store(session, key_id=claim.key_id, key=claim.key, status_code=status_code, body=payload)
    finish(session)
    return Response(payload, status_code=status_code, media_type="application/json")


def claim_of(request: Request, actor: Actor, key: str | None, body: BaseModel) -> idempotency.Claim | None:
    """What the request claims: its key, as the API key's own, with the fingerprint of what it asks (None:
    no key sent). The key string is the API key's own: another key (another operator of the same party)
    sending the same string makes a new request, never a replay of someone else's response."""
    if key is None:
        return None
    if not key.strip() or not key.isprintable():
        raise InvalidInput("Idempotency-Key", "the key must be printable text")
    key_id, party_id = actor.principal.key_id, actor.principal.party_id
    assert key_id is not None and party_id is not None
    request_print = idempotency.fingerprint(request.method, request.url.path, body.model_dump_json())
    return idempotency.Claim(key_id, party_id, key, request_print, actor.at)
