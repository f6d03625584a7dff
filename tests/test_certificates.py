"""Pledge certificates: issued on confirmation, versioned through top-ups and releases, revoked at the end,
downloadable by those who may see the pledge, verifiable by anyone holding the number and code."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from fontTools.pens.boundsPen import BoundsPen  # type: ignore[import-untyped]
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from registry.calendar import EXCHANGE_TZ
from registry.certificate import service as certificates
from registry.certificate.jobs import sweep_job
from registry.certificate.render import grouped, render_html, render_pdf, stylesheet_css
from registry.certificate.renderer import Renderer
from registry.clock import FixedClock
from registry.config import Settings
from registry.db import unit_of_work
from registry.ledger.models import PartyKind
from registry.ledger.service import Selection
from registry.pdf import stylesheet, write_pdf
from registry.pledge import service as pledges
from registry.principal import Role
from tests import factories as f
from tests.desk import Desk, ask, confirm, pledge_of, register

BASE_URL = Settings(database_url="postgresql://unused/unused").base_url()


# --- reading a PDF the way a person (or their phone) would ---------------------------------------


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def embedded_fonts(pdf: bytes) -> set[str]:
    """Base names of the fonts whose glyphs are inside the file (not merely named)."""
    names = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        resources: Any = page["/Resources"]
        for ref in resources["/Font"].values():
            font = ref.get_object()
            for part in font.get("/DescendantFonts", [font]):
                described = part.get_object().get("/FontDescriptor")
                if described is not None and {"/FontFile", "/FontFile2", "/FontFile3"} & set(
                    described.get_object()
                ):
                    names.add(str(part.get_object()["/BaseFont"]))
    return names


def qr_codes(pdf: bytes) -> list[str]:
    png = subprocess.run(
        ["pdftoppm", "-r", "150", "-png", "-f", "1", "-l", "1", "-"],  # stdin to stdout
        input=pdf,
        capture_output=True,
        check=True,
    ).stdout
    return [code.text for code in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


# --- helpers --------------------------------------------------------------------------------------


def blocks(desk: Desk, *ranges: tuple[int, int]) -> list[dict[str, Any]]:
    return [
        {"credit_type": "CCER", "serial_start": desk.serial + a, "serial_end": desk.serial + b}
        for a, b in ranges
    ]


def active_pledge(client: TestClient, desk: Desk, **overrides: Any) -> dict[str, Any]:
    """1,000 + 1,000 units in two separate serial blocks, confirmed."""
    body = {"collateral": {"blocks": blocks(desk, (0, 999), (2000, 2999))}, **overrides}
    pledge = register(client, desk, **body)
    assert confirm(client, desk.op1, pledge["instructions"][0]).status_code == 200
    return pledge_of(client, desk, pledge)


def download(client: TestClient, headers: dict[str, str], pledge: dict[str, Any], **params: Any) -> Any:
    return client.get(f"/v1/pledges/{pledge['id']}/certificate", headers=headers, params=params)


def code_of(session: Session, number: str) -> str:
    found = certificates.by_number(session, number)
    assert found is not None
    return found.verification_code


def verify(client: TestClient, number: str, code: str, **headers: str) -> Any:
    return client.get(f"/v1/certificates/{number}/verify", params={"code": code}, headers=headers)


# --- the lifecycle --------------------------------------------------------------------------------


def test_confirmation_issues_a_certificate_that_says_everything(
    client: TestClient, desk: Desk, session: Session
) -> None:
    pending = register(client, desk, collateral={"blocks": blocks(desk, (0, 999), (2000, 2999))})
    assert pending["certificate"] is None
    assert download(client, desk.bank, pending).status_code == 404  # nothing before the exchange confirms

    assert confirm(client, desk.op1, pending["instructions"][0]).status_code == 200
    pledge = pledge_of(client, desk, pending)
    number = f"{pledge['registration_no']}-01"
    assert pledge["certificate"]["number"] == number and pledge["certificate"]["status"] == "valid"

    response = download(client, desk.bank, pledge)
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.headers["x-certificate-number"] == number
    pdf = response.content
    words = pdf_text(pdf)
    parties = {p["id"]: p for p in client.get("/v1/parties", headers=desk.op1).json()["items"]}
    for expected in [
        "质押登记证明",
        "Certificate of Pledge Registration",
        "林业碳汇",  # the project type by its names, not its code
        "Forestry carbon sink",
        number,
        pledge["registration_no"],
        pledge["loan"]["contract_no"],
        "1,000,000.00",
        "2,000",
        "2026-03-02",
        "2027-03-01",
        parties[pledge["pledgee_party_id"]]["name"],
        parties[pledge["pledgor_party_id"]]["name"],
        parties[pledge["borrower_party_id"]]["name"],
        parties[pledge["borrower_party_id"]]["credit_code"],
        "PBOC-2026-0001",
    ]:
        assert expected in words, expected
    for block in pledge["blocks"]:  # every serial block, first and last serial
        assert f"{block['serial_start']} {block['serial_end']}" in words

    # Chinese set in an embedded CJK font, not boxes or a font the reader may not have.
    assert any("Noto-Sans-CJK-SC" in name for name in embedded_fonts(pdf)), embedded_fonts(pdf)

    # The QR code opens the public verification address, which answers for this certificate.
    [url] = qr_codes(pdf)
    code = code_of(session, number)
    assert url == f"{BASE_URL}/v1/certificates/{number}/verify?code={code}"
    link = urlsplit(url)
    answer = client.get(f"{link.path}?{link.query}")
    assert answer.status_code == 200
    assert answer.json() == {
        "number": number,
        "status": "valid",
        "version": 1,
        "issued_at": answer.json()["issued_at"],
        "status_changed_at": None,
        "quantity": 2000,
        "credit_type": "CCER",
        "sha256": hashlib.sha256(pdf).hexdigest(),
        "latest_version": 1,
        "issuer": f.the_exchange(session).name,  # the exchange, a public fact
    }  # nothing confidential: no parties, no amounts, no contract


def test_registration_numbers_are_drawn_in_order_and_keep_every_digit(
    client: TestClient, desk: Desk, session: Session, clock: FixedClock
) -> None:
    """ZY-<the exchange's year>-<the next number, six digits or more>, drawn by the confirmation itself."""
    session.execute(text("SELECT setval('registration_no_seq', 999998)"))
    year = clock.now().astimezone(EXCHANGE_TZ).year
    first = active_pledge(client, desk)
    second = active_pledge(client, desk, collateral={"blocks": blocks(desk, (4000, 4999))})
    assert (first["registration_no"], second["registration_no"]) == (
        f"ZY-{year}-999999",
        f"ZY-{year}-1000000",
    )
    assert second["certificate"]["number"] == f"ZY-{year}-1000000-01"
    stored = session.execute(text("SELECT registration_no FROM pledge WHERE id = :p"), {"p": second["id"]})
    assert stored.scalar_one() == f"ZY-{year}-1000000"


def test_versions_are_superseded_then_revoked_and_downloads_never_change(
    client: TestClient, desk: Desk, session: Session
) -> None:
    pledge = active_pledge(client, desk)
    first = download(client, desk.bank, pledge)
    v1, code1 = first.content, code_of(session, f"{pledge['registration_no']}-01")
    again = download(client, desk.bank, pledge)
    assert again.content == v1 and again.headers["etag"] == f'"{hashlib.sha256(v1).hexdigest()}"'
    unchanged = download(client, {**desk.bank, "If-None-Match": again.headers["etag"]}, pledge)
    assert unchanged.status_code == 304

    top_up = ask(client, desk, pledge, type="top_up", blocks=blocks(desk, (5000, 5499)))
    confirm(client, desk.op2, top_up)
    v2 = download(client, desk.bank, pledge)
    assert v2.headers["x-certificate-version"] == "2" and v2.headers["x-certificate-status"] == "valid"
    assert "2,500" in pdf_text(v2.content) and f"{pledge['registration_no']}-01" in pdf_text(v2.content)
    assert verify(client, f"{pledge['registration_no']}-01", code1).json()["status"] == "superseded"
    assert verify(client, f"{pledge['registration_no']}-01", code1).json()["latest_version"] == 2
    assert download(client, desk.bank, pledge, version=1).content == v1  # byte for byte as issued

    partial = ask(client, desk, pledge, type="release", quantity=500, outstanding_principal="600000.00")
    confirm(client, desk.op1, partial)
    v3 = download(client, desk.bank, pledge)
    assert v3.headers["x-certificate-number"] == f"{pledge['registration_no']}-03"
    assert "2,000" in pdf_text(v3.content) and "600,000.00" in pdf_text(v3.content)

    full = ask(client, desk, pledge, type="release", outstanding_principal="0.00")
    confirm(client, desk.op2, full)
    last = download(client, desk.bank, pledge)
    assert last.headers["x-certificate-status"] == "revoked" and last.content == v3.content
    history = client.get(f"/v1/pledges/{pledge['id']}/certificates", headers=desk.bank).json()["items"]
    assert [(c["version"], c["status"]) for c in history] == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "revoked"),
    ]
    assert [c["quantity"] for c in history] == [2000, 2500, 2000]
    assert all(c["status_changed_at"] for c in history)
    number3 = f"{pledge['registration_no']}-03"
    assert verify(client, number3, code_of(session, number3)).json()["status"] == "revoked"


def test_a_disposal_revokes_the_certificate(client: TestClient, desk: Desk, session: Session) -> None:
    pledge = active_pledge(client, desk)
    disposal = ask(client, desk, pledge, type="dispose", to_account_id=desk.bank_account, reason="default")
    confirm(client, desk.op1, disposal)  # first pair of eyes: nothing changes yet
    number = f"{pledge['registration_no']}-01"
    assert verify(client, number, code_of(session, number)).json()["status"] == "valid"
    confirm(client, desk.op2, disposal)
    assert verify(client, number, code_of(session, number)).json()["status"] == "revoked"


def test_rejected_or_cancelled_changes_issue_nothing(client: TestClient, desk: Desk) -> None:
    pledge = active_pledge(client, desk)
    top_up = ask(client, desk, pledge, type="top_up", quantity=100)
    client.post(f"/v1/instructions/{top_up['id']}/reject", headers=desk.op1, json={"reason": "not owned"})
    release = ask(client, desk, pledge, type="release", quantity=100)
    client.post(f"/v1/instructions/{release['id']}/cancel", headers=desk.bank)
    history = client.get(f"/v1/pledges/{pledge['id']}/certificates", headers=desk.bank).json()["items"]
    assert [(c["version"], c["status"]) for c in history] == [(1, "valid")]


# --- who may have it ------------------------------------------------------------------------------


def test_who_may_download(client: TestClient, desk: Desk, session: Session) -> None:
    pledge = active_pledge(client, desk)
    stranger = f.auth(f.key(session, f.party(session), Role.HOLDER))
    auditor = f.auth(f.key(session, f.party(session, PartyKind.AUDITOR), Role.AUDITOR))
    for who, status in [
        (desk.bank, 200),
        (desk.pledgor, 200),
        (desk.holder, 200),  # the borrower
        (desk.op1, 200),
        (auditor, 200),
        (desk.other_bank, 404),  # another tenant's pledge does not exist for it
        (stranger, 404),
        ({}, 401),
    ]:
        assert download(client, who, pledge).status_code == status, who
        listed = client.get(f"/v1/pledges/{pledge['id']}/certificates", headers=who)
        assert listed.status_code == status, who


def test_a_holder_of_another_pledge_cannot_download_this_one(
    client: TestClient, desk: Desk, session: Session
) -> None:
    mine = active_pledge(client, desk)
    owner = f.party(session)
    other_account = f.account(session, owner)
    f.issue(session, other_account.id, 1000)
    holder_of_other = f.auth(f.key(session, owner, Role.HOLDER))
    other = register(
        client, desk, 500, consenter=holder_of_other,
        pledgor_account_id=str(other_account.id), borrower_party_id=str(owner.id),
    )  # fmt: skip
    confirm(client, desk.op1, other["instructions"][0])
    assert download(client, holder_of_other, other).status_code == 200
    refused = download(client, holder_of_other, mine)
    assert refused.status_code == 404 and refused.headers["content-type"] == "application/problem+json"


# --- verification ---------------------------------------------------------------------------------


def test_wrong_codes_are_404_and_slow_down_the_client(
    client: TestClient, desk: Desk, session: Session, clock: FixedClock
) -> None:
    pledge = active_pledge(client, desk)
    number = f"{pledge['registration_no']}-01"
    code = code_of(session, number)
    assert verify(client, number, code.lower()[:4] + "-" + code[4:]).status_code == 200  # as typed off paper
    assert verify(client, "ZY-1999-000001-01", code).status_code == 404  # unknown number: the same answer

    for _ in range(4):  # five wrong answers are allowed (one above); the fifth blocks for 2 s
        wrong = verify(client, number, "AAAAAAAAAAAA")
        assert wrong.status_code == 404 and wrong.json()["code"] == "not_found"
    assert verify(client, number, "AAAAAAAAAAAA").status_code == 429  # the sixth is refused, not checked
    blocked = verify(client, number, code)  # even the right code, so that guessing gains nothing
    assert blocked.status_code == 429 and blocked.headers["retry-after"] == "2"
    assert blocked.json()["code"] == "rate_limited"

    other_client = TestClient(client.app, client=("203.0.113.9", 4000))
    assert verify(other_client, number, code).status_code == 200  # someone else is not slowed down

    clock.advance(timedelta(seconds=3))
    assert verify(client, number, code).status_code == 200
    verify(client, number, "AAAAAAAAAAAA")  # the next failure doubles the wait
    assert verify(client, number, code).headers["retry-after"] == "4"

    clock.advance(timedelta(minutes=30))  # a quiet window starts the count again
    for _ in range(5):
        assert verify(client, number, "AAAAAAAAAAAA").status_code == 404
    assert verify(client, number, code).status_code == 429
    clock.advance(timedelta(seconds=3))
    assert verify(client, number, code).status_code == 200


def test_a_phone_that_scans_the_code_gets_a_page(client: TestClient, desk: Desk, session: Session) -> None:
    pledge = active_pledge(client, desk)
    number = f"{pledge['registration_no']}-01"
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    page = verify(client, number, code_of(session, number), **browser)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "有效 Valid" in page.text and number in page.text and "2,000" in page.text
    issuer = f.the_exchange(session).name
    assert issuer in page.text and verify(client, number, code_of(session, number)).json()["issuer"] == issuer
    # Beijing time to the minute, as the certificate states its dates: the test clock is 09:30 there.
    assert "2026-03-02 09:30（北京时间" in page.text and "+00:00" not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"  # the address carries the code
    assert "default-src 'none'" in page.headers["content-security-policy"]
    wrong = verify(client, number, "AAAAAAAAAAAA", **browser)
    assert wrong.status_code == 404 and "未找到该证明" in wrong.text


# --- the core, directly -----------------------------------------------------------------------------


def test_the_database_keeps_certificates_as_issued(client: TestClient, desk: Desk, session: Session) -> None:
    pledge = active_pledge(client, desk)
    download(client, desk.bank, pledge)  # rendered and stored
    number = f"{pledge['registration_no']}-01"
    for statement in [
        "UPDATE certificate SET content = '{}' WHERE number = :n",
        "UPDATE certificate SET quantity = quantity + 1 WHERE number = :n",
        "UPDATE certificate SET verification_code = 'AAAAAAAAAAAA' WHERE number = :n",
        "UPDATE certificate SET pdf = 'x', sha256 = encode(sha256('x'), 'hex') WHERE number = :n",
        "UPDATE certificate SET status = 'superseded' WHERE number = :n",  # a status change says when
        "UPDATE certificate SET status_changed_at = now() WHERE number = :n",
        "DELETE FROM certificate WHERE number = :n",
    ]:
        with pytest.raises(DBAPIError), session.begin_nested():
            session.execute(text(statement), {"n": number})
    # A revoked certificate never comes back.
    full = ask(client, desk, pledge, type="release")
    confirm(client, desk.op1, full)
    with pytest.raises(DBAPIError), session.begin_nested():
        session.execute(text("UPDATE certificate SET status = 'valid', status_changed_at = NULL WHERE number = :n"),
                        {"n": number})  # fmt: skip


def test_a_stored_digest_must_be_the_digest_of_the_stored_bytes(
    client: TestClient, desk: Desk, session: Session
) -> None:
    pledge = active_pledge(client, desk)
    with pytest.raises(DBAPIError), session.begin_nested():
        session.execute(
            text(
                "UPDATE certificate SET pdf = 'x', sha256 = repeat('0', 64), rendered_at = now() WHERE pledge_id = :p"
            ),
            {"p": pledge["id"]},
        )


def test_concurrent_first_downloads_store_one_pdf(committed_engine: Engine) -> None:
    with unit_of_work(committed_engine) as session:
        number = _committed_pledge(session)
    renderings = iter([b"%PDF-first", b"%PDF-second"])

    def first_download(_: int) -> bytes:
        with unit_of_work(committed_engine) as session:
            found = certificates.by_number(session, number)
            assert found is not None
            return certificates.pdf_for(session, found, lambda _: next(renderings), f.AT)

    with ThreadPoolExecutor(max_workers=2) as pool:
        served = list(pool.map(first_download, range(2)))
    assert served[0] == served[1]  # the one that lost the race serves the winner's bytes
    with unit_of_work(committed_engine) as session:
        found = certificates.by_number(session, number)
        assert found is not None and certificates.stored_pdf(session, found.id) == served[0]


def _committed_pledge(session: Session) -> str:
    bank = f.party(session, PartyKind.BANK)
    account = f.account(session)
    f.issue(session, account.id, 100)
    made = pledges.register(
        session,
        f.bank_actor(bank),
        pledgor_account_id=account.id,
        borrower_party_id=account.party_id,
        loan=pledges.Loan("JK-1", Decimal("1000.00"), date(2026, 3, 2), date(2027, 3, 1)),
        collateral=Selection(credit_type="CCER", quantity=100),
        terms=pledges.Terms(Decimal("0.9"), Decimal("1.3"), Decimal("1.1")),
    )
    f.consent(session, made)
    pledges.confirm(session, f.exchange_actor(session), made.instruction.id)
    found = certificates.latest(session, [made.pledge.id])[made.pledge.id]
    return found.number


def test_worker_processes_render_the_same_bytes(client: TestClient, desk: Desk, session: Session) -> None:
    pledge = active_pledge(client, desk)
    found = certificates.by_number(session, f"{pledge['registration_no']}-01")
    assert found is not None
    renderer = Renderer(BASE_URL, workers=1, recycle_after=2)  # a fresh worker every two documents
    try:
        outputs = [renderer(found.content) for _ in range(3)]
    finally:
        renderer.close()
    assert outputs == [render_pdf(found.content, BASE_URL)] * 3


def test_styles_kept_from_one_certificate_to_the_next_change_no_byte(
    client: TestClient, desk: Desk, session: Session
) -> None:
    """registry/pdf.py keeps the computed styles of one certificate for the next: each PDF is the one a
    rendering that computes every style afresh makes, for a certificate, another one after it (a second
    version, a rare name: a paragraph more, other glyphs) and the first again."""
    pledge = active_pledge(client, desk)
    found = certificates.by_number(session, f"{pledge['registration_no']}-01")
    assert found is not None
    first = found.content
    other = {
        **first,
        "version": 2,
        "previous": found.number,
        "pledgor": {**first["pledgor"], "name": "龘靐齉爨鱻麤𠀋有限公司"},
    }
    fresh = stylesheet(stylesheet_css())
    for content in (first, other, first):
        assert render_pdf(content, BASE_URL) == write_pdf(render_html(content, BASE_URL), fresh)


def drawn_characters(pdf: bytes) -> dict[str, set[str]]:
    """For each embedded font, the characters it has a visible outline for (its subset as embedded)."""
    drawn: dict[str, set[str]] = {}
    for page in PdfReader(io.BytesIO(pdf)).pages:
        resources: Any = page["/Resources"]
        for ref in resources["/Font"].values():
            for part in ref.get_object()["/DescendantFonts"]:
                described = part.get_object()["/FontDescriptor"].get_object()
                font = TTFont(io.BytesIO(described["/FontFile3"].get_object().get_data()))
                glyphs = font.getGlyphSet()
                for code, glyph in font.getBestCmap().items():
                    pen = BoundsPen(glyphs)
                    glyphs[glyph].draw(pen)
                    if pen.bounds is not None:
                        drawn.setdefault(str(part.get_object()["/BaseFont"]), set()).add(chr(code))
    return drawn


def test_any_chinese_name_prints_in_the_embedded_font(
    client: TestClient, desk: Desk, session: Session
) -> None:
    """Names come from data: rare characters (and one outside the Basic Multilingual Plane) are set in the
    embedded Noto Sans CJK SC with their outlines, and read back as text; the QR code still scans."""
    pledge = active_pledge(client, desk)
    found = certificates.by_number(session, f"{pledge['registration_no']}-01")
    assert found is not None
    rare = "龘靐齉爨鱻麤𠀋有限公司"
    content = {**found.content, "pledgor": {**found.content["pledgor"], "name": rare}}
    pdf = render_pdf(content, BASE_URL)
    assert rare in pdf_text(pdf)
    [regular] = [chars for name, chars in drawn_characters(pdf).items() if name.endswith("Noto-Sans-CJK-SC")]
    assert set(rare) <= regular
    assert set("质押登记证明") <= regular  # and the certificate's own words
    [url] = qr_codes(pdf)
    assert url.startswith(f"{BASE_URL}/v1/certificates/{pledge['registration_no']}-01/verify?code=")


def test_the_sweep_renders_what_a_crash_left_unrendered(committed_engine: Engine) -> None:
    with unit_of_work(committed_engine) as session:
        number = _committed_pledge(session)  # confirmed; its background rendering never ran
    clock = FixedClock(f.AT)
    sweep = sweep_job(committed_engine, lambda _: b"%PDF-late", clock.now, grace=timedelta(minutes=2))
    assert sweep() == 0  # just issued: its own rendering may still be under way
    clock.advance(timedelta(minutes=3))
    assert sweep() == 1 and sweep() == 0
    with unit_of_work(committed_engine) as session:
        found = certificates.by_number(session, number)
        assert found is not None and found.sha256 == hashlib.sha256(b"%PDF-late").hexdigest()


def test_a_killed_worker_is_replaced(client: TestClient, desk: Desk, session: Session) -> None:
    pledge = active_pledge(client, desk)
    found = certificates.by_number(session, f"{pledge['registration_no']}-01")
    assert found is not None
    renderer = Renderer(BASE_URL, workers=1)
    try:
        first = renderer(found.content)
        for pid in list(renderer._executor()._processes):  # kill -9 the worker, as the OOM killer would
            os.kill(pid, signal.SIGKILL)
        assert renderer(found.content) == first  # a fresh worker renders the same bytes
    finally:
        renderer.close()


def test_a_nul_character_in_a_number_is_bad_input(client: TestClient) -> None:
    answer = client.get("/v1/certificates/ZY%00-1/verify", params={"code": "AAAAAAAAAAAA"})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"


def test_the_verification_code_copies_out_of_the_pdf_as_printed(
    client: TestClient, desk: Desk, session: Session, tmp_path: Any
) -> None:
    """Whoever verifies a certificate types or copies its code: the PDF's text must hold it as one word.
    With 1pt of letter-spacing, pdftotext (as the API guide reads it) split ~8 % of random codes ("SZQS
    -CE7T-3P98"), and the guide's walk-through failed whenever the demo drew one of them."""
    pledge = active_pledge(client, desk)
    found = certificates.by_number(session, f"{pledge['registration_no']}-01")
    assert found is not None
    split = []
    for _ in range(30):
        code = certificates.new_code()
        (tmp_path / "c.pdf").write_bytes(render_pdf({**found.content, "verification_code": code}, BASE_URL))
        printed = subprocess.run(["pdftotext", str(tmp_path / "c.pdf"), "-"], capture_output=True, text=True,
                                 check=True).stdout  # fmt: skip
        if f"Verification code {grouped(code)}" not in printed:
            split.append(code)
    assert not split
