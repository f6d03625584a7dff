"""On a closed network: no page the registry serves, no template it renders (console pages, the public
verification page, certificates and reports) and no picture the docs show loads anything from outside.

What counts as loading: `src=` (scripts, images, frames), `srcset=`, `href=` of `<link>` (stylesheets,
icons, preloads) and of SVG `<image>`/`<use>`, `data=` of `<object>`, CSS `url(…)` and `@import`, in the
pages, their inline styles and the stylesheets they load. Links a person may click are not loads.
tests/browser/test_offline_docs.py opens the API reference in a real browser with the outside cut off."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from tests.desk import Desk, confirm, register

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted(
    [*ROOT.joinpath("api", "templates").rglob("*.html"), *ROOT.joinpath("registry").rglob("templates/*.html")]
)
DOCS = sorted([ROOT / "README.md", *ROOT.joinpath("docs").glob("*.md")])
CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)|@import\s+(['"])(.*?)\3""", re.I | re.S)
OUTSIDE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)  # http://…, https://…, //host/…


def css_urls(css: str) -> list[str]:
    return [m.group(2) or m.group(4) for m in CSS_URL.finditer(css)]


class Loads(HTMLParser):
    """Every URL an HTML page makes a browser fetch by itself."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = {name: value or "" for name, value in attrs}
        for name in ("src", "data-src", "poster"):
            if name in given:
                self.urls.append(given[name])
        if "srcset" in given:
            self.urls += [part.strip().split(" ")[0] for part in given["srcset"].split(",") if part.strip()]
        if tag in ("link", "image", "use") and "href" in given:
            self.urls.append(given["href"])
        if "xlink:href" in given:
            self.urls.append(given["xlink:href"])
        if tag == "object" and "data" in given:
            self.urls.append(given["data"])
        if "style" in given:
            self.urls += css_urls(given["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += css_urls(data)


def loads(html: str) -> list[str]:
    parser = Loads()
    parser.feed(html)
    return parser.urls


def outside(urls: list[str]) -> list[str]:
    return [u for u in urls if OUTSIDE.match(u.strip()) and not u.strip().startswith("http://testserver/")]


def assert_offline(client: TestClient, path: str, **headers: str) -> None:
    """The page at `path`, and every stylesheet it loads from the registry, fetch nothing from outside."""
    page = client.get(path, headers=headers)
    assert page.status_code < 500 and "text/html" in page.headers["content-type"], (path, page.status_code)
    urls = loads(page.text)
    assert outside(urls) == [], path
    for url in urls:
        if url.endswith(".css") or "stylesheet" in url:
            css = client.get(urljoin(f"http://testserver{path}", url))
            assert css.status_code == 200, url
            assert outside(css_urls(css.text)) == [], url


def test_the_scanner_sees_what_browsers_load() -> None:
    page = """<link rel="stylesheet" href="https://cdn.example/x.css"><script src="//cdn.example/x.js"></script>
              <img srcset="a.png 1x, https://img.example/b.png 2x"><style>@import "https://f.example/a.css";
              body { background: url('http://img.example/bg.png') }</style><a href="https://example.org">a link</a>
              <div style="background:url(data:image/png;base64,AAAA)"></div>"""
    assert outside(loads(page)) == ["https://cdn.example/x.css", "//cdn.example/x.js", "https://img.example/b.png",
                                    "https://f.example/a.css", "http://img.example/bg.png"]  # fmt: skip


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect", "/console/login"])
def test_served_pages_load_nothing_from_outside(client: TestClient, path: str) -> None:
    assert_offline(client, path)


def test_the_api_reference_is_served_by_the_registry(client: TestClient) -> None:
    docs, redoc = client.get("/docs").text, client.get("/redoc").text
    scripts = [u for u in loads(docs) + loads(redoc) if u.endswith(".js")]
    assert scripts and all(client.get(u).status_code == 200 for u in scripts)
    assert (
        "validatorUrl" in docs and '"validatorUrl": null' in docs
    )  # no badge image from validator.swagger.io
    assert "fonts.googleapis.com" not in redoc
    for path in ("/docs", "/redoc"):  # and the browser may fetch from the registry only
        policy = client.get(path).headers["content-security-policy"]
        assert "default-src 'self'" in policy and "img-src 'self' data:" in policy and "http" not in policy


def test_the_public_verification_page_loads_nothing_from_outside(
    client: TestClient, desk: Desk, session: Session
) -> None:
    from registry.certificate import service as certificates

    pledge = register(client, desk)
    assert confirm(client, desk.op1, pledge["instructions"][0]).status_code == 200
    number = client.get(f"/v1/pledges/{pledge['id']}", headers=desk.bank).json()["certificate"]["number"]
    found = certificates.by_number(session, number)
    assert found is not None
    html = {"Accept": "text/html"}
    assert_offline(client, f"/v1/certificates/{number}/verify?code={found.verification_code}", **html)
    assert_offline(client, f"/v1/certificates/{number}/verify?code=WRONGWRONG12", **html)  # the refusal too


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_templates_load_nothing_from_outside(template: Path) -> None:
    """Every page of the console and every document (certificates, reports: WeasyPrint would fetch what
    they name), whatever data fills them."""
    assert outside(loads(template.read_text())) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_docs_pictures_are_in_the_repository(doc: Path) -> None:
    text = doc.read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", text) + loads(text)
    pictures += [
        u for u in re.findall(r"\]\(([^)\s]+)\)", text) if re.search(r"\.(png|jpe?g|gif|svg|webp)$", u)
    ]
    assert outside(pictures) == [], doc.name
    for picture in pictures:
        target = (doc.parent / urlsplit(picture).path).resolve()
        assert target.is_file(), f"{doc.name}: {picture} is not in the repository"
