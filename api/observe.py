"""Every request counted and logged once: its route template, status and duration go to the metrics
(registry/metrics.py) and to one log line (logger `registry.request`) carrying the request id.

The line names the method, the route template, the path and the status — never the query string (a
verification code travels there), headers (API keys, cookies) or the body. Pure ASGI, inside the
request-id middleware and around everything else, so a 401 or 413 answered before the app is counted."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry import logs, metrics

log = logging.getLogger("registry.request")


def route_of(scope: Scope, root_path: str = "") -> str:
    """The template of the route that answered (`/v1/pledges/{pledge_id}`; a mounted app's
    `/static-offline-docs/{path}`), or `unmatched`: paths that no route knows must not become metric
    series of their own. `root_path`: the scope's before routing (a mount extends it)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    mounted = str(scope.get("root_path", ""))
    if mounted != root_path and mounted.startswith(root_path):
        return mounted[len(root_path) :] + "/{path}"
    return "unmatched"


def shown(path: str, limit: int = 300) -> str:
    """A path as a log may carry it: control characters escaped (a decoded %0A must not start a forged
    line in a text log) and cut at `limit` characters."""
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in path[:limit])
    return escaped + ("…" if len(path) > limit else "")


class ObserveMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = scope.get("state", {}).get("request_id")
        root_path = str(scope.get("root_path", ""))
        token = logs.request_id.set(rid)
        began = time.perf_counter()
        status = 500  # what the client gets when the app fails before it answers

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            seconds = time.perf_counter() - began
            route, method, path = route_of(scope, root_path), scope["method"], shown(scope["path"])
            metrics.observe_request(method, route, status, seconds)
            duration_ms = round(seconds * 1000, 1)
            log.info("%s %s %s %.1f ms", method, path, status, duration_ms,
                     extra={"method": method, "route": route, "path": path, "status": status,
                            "duration_ms": duration_ms})  # fmt: skip
            logs.request_id.reset(token)
