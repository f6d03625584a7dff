"""The console in a real browser: what an operator, a borrower and a bank user actually do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, text

from registry.clock import SystemClock
from registry.db import unit_of_work
from registry.ledger.models import Party, PartyKind
from registry.ledger.service import Selection
from registry.pledge import service as pledges
from registry.principal import Actor, Principal, Role
from registry.users import service as users
from tests import factories as f
from tests.conftest import Live

PASSWORD = "correct horse battery"


@dataclass
class World:
    pending_pledge: str
    pending_instruction: str
    active_pledge: str  # the borrower's, confirmed: it has a certificate
    other_bank_pledge: str
    awaiting_pledge: str  # a bank's request its pledgor has not consented to yet
    awaiting_instruction: str


@pytest.fixture
def world(committed_engine: Engine) -> World:
    now = SystemClock().now()
    with unit_of_work(committed_engine) as session:
        exchange = f.the_exchange(session)
        bank, other_bank = f.party(session, PartyKind.BANK), f.party(session, PartyKind.BANK)
        pledgor, borrower = f.party(session), f.party(session)
        account = f.account(session, pledgor)
        f.issue(session, account.id, 10_000)
        people: list[tuple[str, Party, Role]] = [
            ("op-one", exchange, Role.EXCHANGE),
            ("banker", bank, Role.BANK),
            ("borrower", borrower, Role.HOLDER),
            ("pledgor", pledgor, Role.HOLDER),
        ]
        for username, party, role in people:
            users.create_user(session, username=username, display_name=username, party=party, role=role,
                              password=PASSWORD, now=now)  # fmt: skip

        def register(lender: Party, quantity: int, consent: bool = True) -> pledges.Registered:
            made = pledges.register(
                session, Actor(Principal(lender.id, Role.BANK), now), pledgor_account_id=account.id,
                borrower_party_id=borrower.id,
                loan=pledges.Loan(f"浏览器-2026-{quantity}", Decimal("100000.00"), date(2026, 3, 2), date(2027, 3, 1)),
                collateral=Selection(credit_type="CCER", quantity=quantity),
                terms=pledges.Terms(Decimal("0.7"), Decimal("1.3"), Decimal("1.1")),
            )  # fmt: skip
            if consent:
                f.consent(session, made, now)
            return made

        operator = Actor(Principal(exchange.id, Role.EXCHANGE, operator="setup"), now)
        pending, active, other = register(bank, 1500), register(bank, 2000), register(other_bank, 500)
        pledges.confirm(session, operator, active.instruction.id)
        pledges.confirm(session, operator, other.instruction.id)
        awaiting = register(bank, 700, consent=False)
    return World(
        str(pending.pledge.id), str(pending.instruction.id), str(active.pledge.id), str(other.pledge.id),
        str(awaiting.pledge.id), str(awaiting.instruction.id),
    )  # fmt: skip


def sign_in(page: Page, live: Live, username: str) -> None:
    page.goto(f"{live.url}/console/")
    expect(page).to_have_url(f"{live.url}/console/login?next=%2Fconsole%2F")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_text(f"当前用户 {username}")).to_be_visible()


def instruction_status(engine: Engine, instruction_id: str) -> str:
    with unit_of_work(engine) as session:
        return str(
            session.execute(
                text("SELECT status FROM instruction WHERE id = :i"), {"i": instruction_id}
            ).scalar_one()
        )


def test_an_operator_confirms_a_registration(page: Page, live: Live, world: World) -> None:
    sign_in(page, live, "op-one")
    expect(page).to_have_url(f"{live.url}/console/queue")
    row = page.locator(f"#instruction-{world.pending_instruction}")
    expect(row).to_contain_text("本申请已锁定")
    expect(row).to_contain_text("1,500")
    row.get_by_role("button", name="确认").click()
    expect(page).to_have_url(f"{live.url}/console/pledges/{world.pending_pledge}?done=confirmed")
    expect(page.get_by_role("status")).to_have_text("已确认。")
    expect(page.locator("#pledge-status")).to_have_text("生效")
    expect(page.locator("#certificates")).to_contain_text("-01")
    expect(page.locator("#certificates")).to_contain_text("有效")


def test_a_borrower_downloads_the_certificate(page: Page, live: Live, world: World, tmp_path: Path) -> None:
    sign_in(page, live, "borrower")
    expect(page).to_have_url(f"{live.url}/console/pledges")
    with page.expect_download() as download:
        page.locator(f"a[href='/console/pledges/{world.active_pledge}/certificate']").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith("-01.pdf") and saved.read_bytes().startswith(b"%PDF")


def test_a_bank_user_cannot_open_another_banks_pledge(page: Page, live: Live, world: World) -> None:
    sign_in(page, live, "banker")
    response = page.goto(f"{live.url}/console/pledges/{world.other_bank_pledge}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="未找到")).to_be_visible()
    own = page.goto(f"{live.url}/console/pledges/{world.active_pledge}")
    assert own is not None and own.status == 200


def test_a_form_without_the_csrf_token_is_refused(
    page: Page, live: Live, world: World, committed_engine: Engine
) -> None:
    sign_in(page, live, "op-one")
    row = page.locator(f"#instruction-{world.pending_instruction}")
    row.locator("input[name=csrf]").first.evaluate("input => input.remove()")  # as a forged form would
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        row.get_by_role("button", name="确认").click()
    assert posted.value.status == 403
    expect(page.get_by_text("the form did not carry this session's token")).to_be_visible()
    assert instruction_status(committed_engine, world.pending_instruction) == "pending"


def test_the_pledgor_consents_and_the_request_reaches_the_queue(
    page: Page, live: Live, world: World, committed_engine: Engine
) -> None:
    sign_in(page, live, "pledgor")
    page.get_by_role("link", name="待我同意").click()
    row = page.locator(f"#consent-{world.awaiting_instruction}")
    expect(row).to_contain_text("质押登记")
    expect(row).to_contain_text("700")
    row.get_by_role("button", name="同意").click()
    expect(page.get_by_role("status")).to_have_text("已同意：申请已提交交易所。")
    expect(page.locator(f"#consent-{world.awaiting_instruction}")).to_have_count(0)
    assert instruction_status(committed_engine, world.awaiting_instruction) == "pending"
    page.get_by_role("button", name="退出").click()
    sign_in(page, live, "op-one")
    expect(page.locator(f"#instruction-{world.awaiting_instruction}")).to_contain_text("本申请已锁定")
