"""The API reference on a closed network: Swagger UI and ReDoc open and draw the API in a real browser that
may reach nothing but the registry (every other request is refused and recorded)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.conftest import Live


@pytest.fixture
def closed(page: Page, live: Live) -> Iterator[tuple[Page, list[str]]]:
    """The page, with everything not on the registry's own address refused."""
    ours = urlsplit(live.url).netloc
    refused: list[str] = []

    def only_ours(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == ours:
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    page.route("**/*", only_ours)
    yield page, refused


def test_swagger_ui_draws_the_api_with_no_way_out(closed: tuple[Page, list[str]], live_url: str) -> None:
    page, refused = closed
    page.goto(f"{live_url}/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)  # every operation, drawn
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Pledge Registry")
    assert page.locator(".opblock").count() > 20
    assert refused == []


def test_redoc_draws_the_api_with_no_way_out(closed: tuple[Page, list[str]], live_url: str) -> None:
    page, refused = closed
    page.goto(f"{live_url}/redoc")
    expect(page.get_by_role("heading", name="Pledge Registry").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("/v1/pledges").first).to_be_attached()
    assert refused == []


def test_console_sign_in_and_verification_pages_with_no_way_out(
    closed: tuple[Page, list[str]], live_url: str
) -> None:
    page, refused = closed
    page.goto(f"{live_url}/console/login")
    expect(page.locator("form")).to_be_visible()
    page.goto(f"{live_url}/v1/certificates/ZY-2026-000001-01/verify?code=NOSUCHCODE12")
    expect(page.locator("body")).to_be_visible()
    assert refused == []
