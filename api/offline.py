"""The API reference pages (Swagger UI at /docs, ReDoc at /redoc) may load only what the registry serves.

Their scripts and styles come from fastapi-offline's assets (api/app.py). ReDoc's bundle still draws a
logo from cdn.redoc.ly in its side menu; on a closed network that request hangs until it fails. The pages
are therefore sent with a Content-Security-Policy that allows this origin only (plus the inline script
and styles the two tools write, and `blob:` workers for ReDoc's search): the browser does not even try
the outside address, and the logo falls back to nothing."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOC_PAGES = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class OfflineDocsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in DOC_PAGES:
            await self.app(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"content-security-policy", POLICY.encode()))
            await send(message)

        await self.app(scope, receive, with_policy)
