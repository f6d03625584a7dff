"""The router tries routes in turn: the app puts routes with fixed paths first (api/app.py, fixed_first), and
every path must still reach the route it reached in the order the routers declared them."""

from __future__ import annotations

import re

import pytest
from starlette.routing import BaseRoute, Match

import api.app
from registry.config import Settings

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _resolve(routes: list[BaseRoute], method: str, path: str) -> tuple[str, int] | None:
    """What Starlette's router picks: the first full match, else the first partial one (a 405)."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }
    partial = None
    for n, route in enumerate(routes):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return "full", n
        if match == Match.PARTIAL and partial is None:
            partial = n
    return None if partial is None else ("partial", partial)


def test_fixed_paths_first_send_every_path_where_it_went(monkeypatch: pytest.MonkeyPatch) -> None:
    declared: list[list[BaseRoute]] = []
    reorder = api.app.fixed_first

    def recorded(routes: list[BaseRoute]) -> list[BaseRoute]:
        declared.append(list(routes))
        return reorder(routes)

    monkeypatch.setattr(api.app, "fixed_first", recorded)
    app = api.app.create_app(
        Settings(database_url="postgresql://unused/unused", scheduler_enabled=False, certificate_workers=0,
                 report_workers=0)
    )  # fmt: skip
    (before,) = declared
    after = app.router.routes
    assert sorted(map(id, before)) == sorted(map(id, after))
    paths = {re.sub(r"\{[^}]+\}", "x1", getattr(r, "path", "")) for r in before} - {""}
    paths |= {p + "/extra" for p in paths} | {"/v1/transfers/batch", "/v1/pledges/batch", "/nowhere"}
    for path in sorted(paths):
        for method in METHODS:
            was, now = _resolve(before, method, path), _resolve(after, method, path)
            assert (was and (was[0], before[was[1]])) == (now and (now[0], after[now[1]])), (method, path)
    busiest = [getattr(r, "path", "") for r in after[:40]]
    assert "/v1/transfers" in busiest and "/v1/pledges" in busiest


def test_a_fixed_path_that_an_earlier_route_takes_stays_behind_it() -> None:
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    def page(request: object) -> PlainTextResponse:
        return PlainTextResponse("")

    routes: list[BaseRoute] = [
        Route("/a/{x}", page),
        Route("/a/b", page),
        Route("/c/{x}", page),
        Route("/d", page),
    ]
    assert [getattr(r, "path", "") for r in api.app.fixed_first(routes)] == ["/d", "/a/{x}", "/a/b", "/c/{x}"]
