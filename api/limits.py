"""Request body limits, enforced while the body is read: a client cannot make the registry hold more of
its body in memory than the limit, whatever it announces.

A `Content-Length` over the limit is refused before the application runs; a body sent without one
(chunked) is counted as it arrives and refused as soon as it passes the limit. Either way the answer is
`413` problem+json, code `too_large`."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problems


class BodyTooLarge(HTTPException):
    """Raised from `receive` inside the app: FastAPI passes HTTPExceptions on while it reads a body, so
    the one problem mapping (api/problems.py) answers it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")
        self.limit = limit


class BodyLimitMiddleware:
    """`limit` bytes for every request, or `larger[path]` for the few endpoints that take batches."""

    def __init__(self, app: ASGIApp, *, limit: int, larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.limit)
        announced = _content_length(scope)
        if announced is not None and announced > limit:
            await self._refuse(scope, receive, send, limit)  # nothing of the body is read
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:  # an endpoint that read its body after answering: nothing more can be said
                raise
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        request = Request(scope, receive)
        too_large = BodyTooLarge(limit)
        response = problems.problem(request, 413, "too_large", "Too large", str(too_large.detail))
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees it
    return None
