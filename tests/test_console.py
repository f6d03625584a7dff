"""The web console through HTTP: sign-in, CSRF, who sees which page, the back office's actions, errors as
pages. (Real-browser flows are in tests/browser/.)"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text as sql_text
from sqlmodel import Session

from api.console.i18n import ZH
from registry.clock import FixedClock
from registry.ledger.models import Party, PartyKind
from registry.principal import Role
from registry.users import service as users
from tests import factories as f

PASSWORD = "correct horse battery"


@dataclass
class Office:
    """Two operators, two banks and their users, a pledgor and a borrower; a pending and an active pledge."""

    exchange: Party
    bank: Party
    other_bank: Party
    pledgor: Party
    borrower: Party
    bank_key: dict[str, str]
    other_bank_key: dict[str, str]
    op_key: dict[str, str]
    account: str
    pending: dict[str, Any]
    active: dict[str, Any]
    other: dict[str, Any]


def user(session: Session, username: str, party: Party, role: Role) -> None:
    users.create_user(
        session, username=username, display_name=username.title(), party=party, role=role, password=PASSWORD,
        now=f.AT,
    )  # fmt: skip


@pytest.fixture
def office(session: Session, client: TestClient) -> Office:
    exchange = f.the_exchange(session)
    bank, other_bank = f.party(session, PartyKind.BANK), f.party(session, PartyKind.BANK)
    pledgor, borrower = f.party(session), f.party(session)
    account = f.account(session, pledgor)
    f.account(session, bank)  # where a disposal puts the units
    f.issue(session, account.id, 10_000)
    for name, party, role in [
        ("op-one", exchange, Role.EXCHANGE),
        ("op-two", exchange, Role.EXCHANGE),
        ("banker", bank, Role.BANK),
        ("other-banker", other_bank, Role.BANK),
        ("pledgor", pledgor, Role.HOLDER),
        ("borrower", borrower, Role.HOLDER),
        ("auditor", f.party(session, PartyKind.AUDITOR), Role.AUDITOR),
    ]:
        user(session, name, party, role)
    bank_key, other_key = (
        f.auth(f.key(session, bank, Role.BANK)),
        f.auth(f.key(session, other_bank, Role.BANK)),
    )
    op_key = f.auth(f.key(session, exchange, Role.EXCHANGE, operator="api-op"))
    pledgor_key = f.auth(f.key(session, pledgor, Role.HOLDER, operator="pledgor-api"))

    def pledge(key: dict[str, str], quantity: int, *, confirm: bool, consent: bool = True) -> dict[str, Any]:
        made = client.post("/v1/pledges", headers=key, json=f.pledge_body(account.id, borrower.id, quantity))
        assert made.status_code == 201, made.text
        if consent:
            agreed = client.post(
                f"/v1/instructions/{made.json()['instructions'][0]['id']}/consent", headers=pledgor_key
            )
            assert agreed.status_code == 200, agreed.text
        if confirm:
            client.post(f"/v1/instructions/{made.json()['instructions'][0]['id']}/confirm", headers=op_key)
        body: dict[str, Any] = client.get(f"/v1/pledges/{made.json()['id']}", headers=key).json()
        return body

    return Office(
        exchange, bank, other_bank, pledgor, borrower, bank_key, other_key, op_key, str(account.id),
        pending=pledge(bank_key, 1500, confirm=False),
        active=pledge(bank_key, 2000, confirm=True),
        other=pledge(other_key, 500, confirm=True),
    )  # fmt: skip


def browser(client: TestClient) -> TestClient:
    """Another person at another browser: the same app, a cookie jar of its own."""
    return TestClient(client.app, follow_redirects=False)


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden {name} in the page"
    return found.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> TestClient:
    person = browser(client)
    form = person.get("/console/login")
    answer = person.post(
        "/console/login",
        data={"username": username, "password": password, "csrf": hidden(form.text, "csrf"), "next": ""},
    )
    assert answer.status_code == 303, answer.text
    return person


def csrf_of(person: TestClient, path: str = "/console/pledges") -> str:
    return hidden(person.get(path).text, "csrf")


def refused(person: TestClient, answer: Any, back: str) -> str:
    """A refused form: redirected back to its page (post/redirect/get), which says why once, in Chinese;
    reloading the page shows it again without the message and sends nothing."""
    assert answer.status_code == 303 and answer.headers["location"] == back, answer.text
    page = person.get(back)
    assert page.status_code == 200 and 'class="msg err"' in page.text
    assert 'class="msg err"' not in person.get(back).text  # shown once
    found = re.search(r'<div class="msg err" role="alert">(.*?)</div>', page.text, re.S)
    assert found is not None
    message = found.group(1)
    assert not re.search(r"[A-Za-z]{4,} [a-z]{3,}", message), f"English in the Chinese page: {message}"
    return message


# --- signing in --------------------------------------------------------------------------------------


def test_sign_in_out_and_the_cookie(client: TestClient, office: Office) -> None:
    person = browser(client)
    assert person.get("/console/queue").headers["location"] == "/console/login?next=%2Fconsole%2Fqueue"
    form = person.get("/console/login")
    token = hidden(form.text, "csrf")
    wrong = person.post("/console/login", data={"username": "op-one", "password": "nope", "csrf": token})
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
    right = person.post(
        "/console/login",
        data={"username": "op-one", "password": PASSWORD, "csrf": token, "next": "/console/queue"},
    )
    assert right.status_code == 303 and right.headers["location"] == "/console/queue"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert person.get("/console/queue").status_code == 200

    assert person.post("/console/logout", data={}).status_code == 403  # no token: refused
    out = person.post("/console/logout", data={"csrf": csrf_of(person)})
    assert out.status_code == 303
    assert person.get("/console/queue").status_code == 303  # the session is over, even with the old cookie


def test_a_sign_in_form_from_elsewhere_is_refused(client: TestClient, office: Office) -> None:
    person = browser(client)
    forged = person.post("/console/login", data={"username": "op-one", "password": PASSWORD, "csrf": "x"})
    assert forged.status_code == 403 and "text/html" in forged.headers["content-type"]


def test_the_next_address_stays_in_the_console(client: TestClient, office: Office) -> None:
    person = browser(client)
    token = hidden(person.get("/console/login").text, "csrf")
    answer = person.post(
        "/console/login",
        data={"username": "op-one", "password": PASSWORD, "csrf": token, "next": "https://evil.example/"},
    )
    assert answer.headers["location"] == "/console/"


def test_sessions_end_when_idle_and_for_disabled_users(
    client: TestClient, office: Office, session: Session, clock: FixedClock
) -> None:
    person = sign_in(client, "banker")
    clock.advance(timedelta(minutes=20))
    assert person.get("/console/pledges").status_code == 200
    clock.advance(timedelta(minutes=31))  # idle for longer than 30 minutes
    assert person.get("/console/pledges").status_code == 303
    again = sign_in(client, "banker")
    users.disable(session, "banker", clock.now())
    assert again.get("/console/pledges").status_code == 303
    token = hidden(browser(client).get("/console/login").text, "csrf")
    refused = browser(client).post(
        "/console/login", data={"username": "banker", "password": PASSWORD, "csrf": token}
    )
    assert refused.status_code in (401, 403)


def test_repeated_wrong_passwords_are_slowed_down(client: TestClient, office: Office) -> None:
    person = browser(client)
    token = hidden(person.get("/console/login").text, "csrf")
    for _ in range(6):
        person.post("/console/login", data={"username": "op-one", "password": "guess", "csrf": token})
    blocked = person.post("/console/login", data={"username": "op-one", "password": PASSWORD, "csrf": token})
    assert blocked.status_code == 429 and "尝试次数过多" in blocked.text and blocked.headers["retry-after"]


def test_passwords_are_stored_as_argon2id(session: Session, office: Office) -> None:
    from sqlalchemy import text

    stored = session.execute(
        text("SELECT password_hash FROM console_user WHERE username = 'op-one'")
    ).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


# --- the back office ---------------------------------------------------------------------------------


def test_the_queue_shows_what_the_pledgor_holds_and_a_confirmation_freezes(
    client: TestClient, office: Office
) -> None:
    op = sign_in(client, "op-one")
    queue = op.get("/console/queue")
    row = re.search(
        rf'<tr id="instruction-{office.pending["instructions"][0]["id"]}".*?</tr>', queue.text, re.S
    )
    assert row, "the pending registration is in the queue"
    cells = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row.group(0)))
    # asked 1,500 (held for it); of the pledgor's 10,000: 6,000 available, 2,500 frozen for two other pledges
    assert "本申请已锁定 1,500 可用 6,000 其他申请锁定 0 已冻结（质押中） 2,500" in cells

    done = op.post(
        f"/console/instructions/{office.pending['instructions'][0]['id']}/confirm", data={"csrf": csrf_of(op)}
    )
    assert done.status_code == 303 and done.headers["location"].startswith(
        f"/console/pledges/{office.pending['id']}"
    )
    page = op.get(done.headers["location"])
    assert "已确认" in page.text and 'id="pledge-status">生效' in page.text
    registered = client.get(f"/v1/pledges/{office.pending['id']}", headers=office.bank_key).json()
    assert f"{registered['registration_no']}-01" in page.text  # its certificate


def test_a_rejection_needs_a_reason_and_a_refusal_is_a_message(client: TestClient, office: Office) -> None:
    op = sign_in(client, "op-one")
    instruction = office.pending["instructions"][0]["id"]
    empty = op.post(f"/console/instructions/{instruction}/reject", data={"csrf": csrf_of(op), "reason": " "})
    assert "驳回须填写理由" in refused(op, empty, "/console/queue")
    assert (
        client.get(f"/v1/instructions/{instruction}", headers=office.bank_key).json()["status"] == "pending"
    )
    rejected = op.post(
        f"/console/instructions/{instruction}/reject", data={"csrf": csrf_of(op), "reason": "权属存疑"}
    )
    assert rejected.status_code == 303
    again = op.post(f"/console/instructions/{instruction}/confirm", data={"csrf": csrf_of(op)})
    assert refused(op, again, "/console/queue") == "该指令已驳回。"


def test_a_disposal_needs_two_operators_on_the_same_terms_in_the_console_too(
    client: TestClient, office: Office, session: Session
) -> None:
    buyer = f.account(session)
    disposal = client.post(
        f"/v1/pledges/{office.active['id']}/instructions", headers=office.bank_key,
        json={"type": "dispose", "reason": "default"},
    ).json()  # fmt: skip
    one, two = sign_in(client, "op-one"), sign_in(client, "op-two")
    form = one.get("/console/queue").text
    assert 'name="buyer_account"' in form and 'name="price"' in form  # the first operator states the terms
    bad = one.post(
        f"/console/instructions/{disposal['id']}/confirm", data={"csrf": csrf_of(one), "price": "abc"}
    )
    assert "68.50" in refused(one, bad, "/console/queue")
    first = one.post(
        f"/console/instructions/{disposal['id']}/confirm",
        data={"csrf": csrf_of(one), "buyer_account": buyer.number, "price": "68.50"},
    )
    assert first.headers["location"] == "/console/queue?done=reviewed"
    mine = one.get(first.headers["location"]).text
    assert (
        "须由另一名操作员复核" in mine and "您已初审以上条件" in mine
    )  # no confirm button of its own review
    row = re.search(rf'<tr id="instruction-{disposal["id"]}".*?</tr>', mine, re.S)
    assert row and 'name="confirm"' not in row.group(0) and "137,000.00" in row.group(0)
    same = one.post(f"/console/instructions/{disposal['id']}/confirm", data={"csrf": csrf_of(one)})
    assert refused(one, same, "/console/queue") == "四眼原则：op-one 已初审该处置，须由另一名操作员确认。"
    # The second operator is offered the reviewed terms, to confirm or reject: no fields of its own.
    theirs = two.get("/console/queue").text
    row = re.search(rf'<tr id="instruction-{disposal["id"]}".*?</tr>', theirs, re.S)
    assert row and "确认以上处置条件" in row.group(0) and 'name="price"' not in row.group(0)
    assert buyer.number in row.group(0)
    second = two.post(f"/console/instructions/{disposal['id']}/confirm", data={"csrf": csrf_of(two)})
    assert second.status_code == 303
    applied = client.get(f"/v1/instructions/{disposal['id']}", headers=office.bank_key).json()
    assert applied["status"] == "confirmed" and applied["to_account_id"] == str(buyer.id)
    assert applied["price"] == "68.50" and applied["proceeds"] == "137000.00"
    assert applied["reviewed_by"] == "op-one" and applied["decided_by"] == "op-two"


def test_the_pledgor_consents_or_declines_in_the_console(client: TestClient, office: Office) -> None:
    asked = [
        client.post("/v1/pledges", headers=office.bank_key,
                    json=f.pledge_body(office.account, office.borrower.id, n)).json()
        for n in (300, 400)
    ]  # fmt: skip
    pledgor = sign_in(client, "pledgor")
    page = pledgor.get("/console/consents")
    assert page.status_code == 200 and "待我同意" in page.text
    for made in asked:
        assert f'id="consent-{made["instructions"][0]["id"]}"' in page.text
    for who in (
        "banker",
        "borrower",
        "op-one",
    ):  # the asker, the borrower, the exchange: nothing to consent to
        assert "consent-" not in sign_in(client, who).get("/console/consents").text
    agreed = pledgor.post(f"/console/instructions/{asked[0]['instructions'][0]['id']}/consent",
                          data={"csrf": csrf_of(pledgor)})  # fmt: skip
    assert agreed.status_code == 303 and "已同意" in pledgor.get(agreed.headers["location"]).text
    assert client.get(f"/v1/pledges/{asked[0]['id']}", headers=office.bank_key).json()["held_quantity"] == 300
    empty = pledgor.post(f"/console/instructions/{asked[1]['instructions'][0]['id']}/decline",
                         data={"csrf": csrf_of(pledgor), "reason": "  "})  # fmt: skip
    assert "拒绝须填写理由" in refused(pledgor, empty, "/console/consents")
    declined = pledgor.post(f"/console/instructions/{asked[1]['instructions'][0]['id']}/decline",
                            data={"csrf": csrf_of(pledgor), "reason": "not our loan"})  # fmt: skip
    assert declined.status_code == 303
    read = client.get(f"/v1/pledges/{asked[1]['id']}", headers=office.bank_key).json()
    assert read["status"] == "declined" and read["instructions"][0]["decision_reason"] == "not our loan"
    # The borrower (not the pledgor) cannot consent, even with the form.
    borrower = sign_in(client, "borrower")
    third = client.post("/v1/pledges", headers=office.bank_key,
                        json=f.pledge_body(office.account, office.borrower.id, 10)).json()  # fmt: skip
    answer = borrower.post(f"/console/instructions/{third['instructions'][0]['id']}/consent",
                           data={"csrf": csrf_of(borrower)})  # fmt: skip
    assert refused(borrower, answer, "/console/consents") == "您无权进行此操作。"
    assert client.get(f"/v1/pledges/{third['id']}", headers=office.bank_key).json()["held_quantity"] == 0


def test_a_bank_withdraws_its_own_request_in_the_console(client: TestClient, office: Office) -> None:
    banker = sign_in(client, "banker")
    page = banker.get(f"/console/pledges/{office.pending['id']}").text
    instruction = office.pending["instructions"][0]["id"]
    assert f"/console/instructions/{instruction}/cancel" in page and "撤回" in page
    assert (
        f"/console/instructions/{instruction}/cancel"
        not in sign_in(client, "pledgor").get(f"/console/pledges/{office.pending['id']}").text
    )  # only the asker withdraws
    done = banker.post(f"/console/instructions/{instruction}/cancel", data={"csrf": csrf_of(banker)})
    assert done.status_code == 303
    assert (
        client.get(f"/v1/pledges/{office.pending['id']}", headers=office.bank_key).json()["status"]
        == "cancelled"
    )


def test_the_queue_shows_each_requests_valuation_at_todays_price(client: TestClient, office: Office) -> None:
    prints = [{"credit_type": "CCER", "trade_date": "2026-02-27", "price": "400.00", "volume": 100}]
    client.post("/v1/prices/trades", headers=office.op_key, json=prints)
    page = sign_in(client, "op-one").get("/console/queue").text
    row = re.search(rf'<tr id="instruction-{office.pending["instructions"][0]["id"]}".*?</tr>', page, re.S)
    assert row is not None
    cell = row.group(0)
    assert "按今日参考价" in page and "600,000.00" in cell and "质押率" in cell  # 1,500 units at 400
    assert "166.67%" in cell  # the pledge rate: 1,000,000 / 600,000, above the lender's 70 %
    assert "不能确认" in cell and "disabled" in cell


def test_forms_without_this_sessions_token_are_refused(client: TestClient, office: Office) -> None:
    op, other = sign_in(client, "op-one"), sign_in(client, "op-two")
    instruction = office.pending["instructions"][0]["id"]
    for data in ({}, {"csrf": ""}, {"csrf": csrf_of(other)}):  # none, empty, another session's
        refused = op.post(f"/console/instructions/{instruction}/confirm", data=data)
        assert refused.status_code == 403 and "text/html" in refused.headers["content-type"]
    assert (
        client.get(f"/v1/instructions/{instruction}", headers=office.bank_key).json()["status"] == "pending"
    )


# --- who sees what -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "page", "status"),
    [
        ("banker", "active", 200),
        ("banker", "other", 404),  # another bank's pledge does not exist for it
        ("other-banker", "active", 404),
        ("borrower", "active", 200),
        ("pledgor", "active", 200),
        ("auditor", "other", 200),
        ("op-one", "other", 200),
        ("banker", "/console/queue", 403),
        ("borrower", "/console/queue", 403),
        ("borrower", "/console/alerts", 403),
        ("banker", "/console/units/CCER/1", 403),
        ("auditor", "/console/queue", 200),
    ],
)
def test_who_sees_which_page(
    client: TestClient, office: Office, username: str, page: str, status: int
) -> None:
    person = sign_in(client, username)
    path = page if page.startswith("/") else f"/console/pledges/{getattr(office, page)['id']}"
    answer = person.get(path)
    assert answer.status_code == status
    assert "text/html" in answer.headers["content-type"] and "Traceback" not in answer.text
    if status == 200 and "pledges" in path:
        assert getattr(office, page)["loan"]["contract_no"] in answer.text


def test_lists_show_only_ones_own(client: TestClient, office: Office) -> None:
    banker = sign_in(client, "banker").get("/console/pledges").text
    assert (
        office.active["loan"]["contract_no"] in banker and office.other["loan"]["contract_no"] not in banker
    )
    borrower = sign_in(client, "borrower").get("/console/pledges").text
    assert office.active["loan"]["contract_no"] in borrower and "下载" in borrower


def test_the_borrower_downloads_the_current_certificate(client: TestClient, office: Office) -> None:
    borrower = sign_in(client, "borrower")
    listing = borrower.get("/console/pledges").text
    link = f"/console/pledges/{office.active['id']}/certificate"
    assert link in listing
    pdf = borrower.get(link)
    assert (
        pdf.status_code == 200
        and pdf.content.startswith(b"%PDF")
        and "attachment" in pdf.headers["content-disposition"]
    )
    assert browser(client).get(link).status_code == 303  # signed out: to the sign-in page


def test_search_by_number_contract_name_and_serial(client: TestClient, office: Office) -> None:
    op = sign_in(client, "op-one")
    reg = office.active["registration_no"]
    account = client.get(f"/v1/accounts/{office.account}", headers=office.op_key).json()["number"]
    for query in [
        reg,
        office.active["certificate"]["number"],  # what a caller reads off the document
        office.active["certificate"]["number"].lower(),
        office.active["loan"]["contract_no"],
        office.pledgor.name[:8],
        account,
        str(office.pledgor.credit_code),
        str(office.active["blocks"][0]["serial_start"]),
    ]:
        assert (
            f"/console/pledges/{office.active['id']}" in op.get("/console/search", params={"q": query}).text
        ), query
    serial = op.get("/console/search", params={"q": str(office.active["blocks"][0]["serial_start"])}).text
    assert f"/console/units/CCER/{office.active['blocks'][0]['serial_start']}" in serial
    history = op.get(f"/console/units/CCER/{office.active['blocks'][0]['serial_start']}")
    assert history.status_code == 200 and "冻结" in history.text and "锁定" in history.text
    assert ">freeze<" not in history.text and "· frozen" not in history.text  # every code in Chinese
    other_bank = sign_in(client, "other-banker")
    assert (
        f"/console/pledges/{office.active['id']}"
        not in other_bank.get("/console/search", params={"q": reg}).text
    )


def test_the_bank_acknowledges_its_alerts(client: TestClient, office: Office, session: Session) -> None:
    from sqlalchemy import text

    session.execute(
        text("INSERT INTO alert (pledge_id, pledgee_party_id, kind, trigger, status, raised_at, details) "
             "VALUES (:p, :b, 'margin_warning', 'coverage', 'open', now(), '{}')"),
        {"p": office.active["id"], "b": office.bank.id},
    )  # fmt: skip
    banker = sign_in(client, "banker")
    page = banker.get("/console/alerts").text
    alert_id = re.search(r'action="/console/alerts/(\d+)/ack"', page)
    assert alert_id, "an acknowledge button"
    done = banker.post(f"/console/alerts/{alert_id.group(1)}/ack", data={"csrf": csrf_of(banker)})
    assert done.status_code == 303
    assert "已知悉" in banker.get("/console/alerts?done=acked").text


# --- the pages themselves ----------------------------------------------------------------------------


def test_pages_carry_security_headers_and_speak_english_on_request(
    client: TestClient, office: Office
) -> None:
    op = sign_in(client, "op-one")
    page = op.get(f"/console/pledges/{office.active['id']}")
    assert (
        page.headers["x-frame-options"] == "DENY"
        and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    )
    assert "<svg" in page.text and "覆盖倍数走势" in page.text  # the coverage chart
    switched = op.get("/console/lang/en", params={"next": f"/console/pledges/{office.active['id']}"})
    assert switched.status_code == 303
    english = op.get(switched.headers["location"]).text
    assert "Coverage ratio over time" in english and "Certificate versions" in english


def test_an_unknown_page_is_a_page(client: TestClient, office: Office) -> None:
    op = sign_in(client, "op-one")
    missing = op.get("/console/pledges/00000000-0000-0000-0000-000000000000")
    assert (
        missing.status_code == 404
        and "未找到" in missing.text
        and "text/html" in missing.headers["content-type"]
    )
    bad = op.get("/console/pledges/not-a-uuid")
    assert bad.status_code == 422 and "text/html" in bad.headers["content-type"]


def test_every_code_a_page_shows_has_its_chinese() -> None:
    from registry.audit.models import EventKind
    from registry.ledger.models import BlockStatus
    from registry.pledge.states import InstructionStatus, PledgeStatus
    from registry.principal import Role

    codes = [f"event:{k.value}" for k in EventKind] + [f"role:{r.value}" for r in Role]
    codes += [s.value for s in (*PledgeStatus, *InstructionStatus, *BlockStatus)]

    from tests.domain_errors import every_error

    messages = {e.message for e in every_error()}
    assert [c for c in codes if c not in ZH] == []
    assert [m for m in messages if m not in ZH] == []
    for message in messages:  # the translation fills the same figures
        assert set(re.findall(r"{(\w+)}", ZH[message])) == set(re.findall(r"{(\w+)}", message)), message


def test_every_text_on_the_pages_has_its_chinese() -> None:
    templates = Path(__file__).resolve().parent.parent / "api" / "templates" / "console"
    used = set()
    for template in templates.glob("*.html"):
        for double, single in re.findall(r"""\bt\("([^"]+)"\)|\bt\('([^']+)'\)""", template.read_text()):
            used.add(double or single)
    assert used - ZH.keys() == set()


@pytest.mark.parametrize(
    ("path", "status"),
    [("/console/search?q=a%00b", 422), ("/console/units/CC%00/1", 422), ("/console/pledges?status=%00", 200)],
)
def test_a_nul_character_is_bad_input_not_a_crash(
    client: TestClient, office: Office, path: str, status: int
) -> None:
    answer = sign_in(client, "op-one").get(path)  # an unknown status filter is ignored: all pledges
    assert answer.status_code == status and "text/html" in answer.headers["content-type"]


def test_a_nul_character_in_a_sign_in_form_is_refused(client: TestClient, office: Office) -> None:
    person = browser(client)
    token = hidden(person.get("/console/login").text, "csrf")
    answer = person.post("/console/login", data={"username": "a\x00b", "password": PASSWORD, "csrf": token})
    assert answer.status_code == 422 and "text/html" in answer.headers["content-type"]


def test_a_disposed_pledges_page_says_where_its_units_went_and_its_alerts_are_closed(
    client: TestClient, office: Office, session: Session
) -> None:
    from sqlalchemy import text

    buyer = f.account(session)
    prints = [{"credit_type": "CCER", "trade_date": "2026-02-27", "price": "20.00", "volume": 100}]
    client.post("/v1/prices/trades", headers=office.op_key, json=prints)  # far under the lines: alerts
    open_before = session.execute(
        text("SELECT count(*) FROM alert WHERE pledge_id = :p AND status = 'open'"),
        {"p": office.active["id"]},
    ).scalar_one()
    assert open_before >= 1
    disposal = client.post(
        f"/v1/pledges/{office.active['id']}/instructions", headers=office.bank_key,
        json={"type": "dispose", "reason": "default"},
    ).json()  # fmt: skip
    one, two = sign_in(client, "op-one"), sign_in(client, "op-two")
    one.post(f"/console/instructions/{disposal['id']}/confirm",
             data={"csrf": csrf_of(one), "buyer_account": buyer.number, "price": "20.00"})  # fmt: skip
    two.post(f"/console/instructions/{disposal['id']}/confirm", data={"csrf": csrf_of(two)})
    # Closed in the same transaction: no alert is open for a pledge that no longer exists as a risk.
    assert (
        session.execute(
            text("SELECT count(*) FROM alert WHERE pledge_id = :p AND status = 'open'"),
            {"p": office.active["id"]},
        ).scalar_one()
        == 0
    )
    page = sign_in(client, "banker").get(f"/console/pledges/{office.active['id']}").text
    assert "已处置" in page and "已结束：不再有质押中的单位。" in page
    assert buyer.number in page and "40,000.00" in page  # where the 2,000 units went, and for how much
    assert "处置</span>" not in page.split("覆盖倍数")[1][:200]  # no stale coverage level for a closed pledge
    listing = sign_in(client, "banker").get("/console/pledges").text
    row = re.search(rf'href="/console/pledges/{office.active["id"]}".*?</tr>', listing, re.S)
    assert row is not None and "level-" not in row.group(0)  # no green 200 % for a disposed pledge


def test_the_valuation_history_leaves_out_repeats_and_pages(
    client: TestClient, office: Office, session: Session
) -> None:
    from registry.valuation import service as valuation

    for n in range(30):  # thirty price posts, each one day: thirty valuations that differ
        day = f"2026-02-{(n % 27) + 1:02d}" if n < 27 else f"2026-01-{n - 20:02d}"
        prints = [{"credit_type": "CCER", "trade_date": day, "price": f"{60 + n}.00", "volume": 10}]
        client.post("/v1/prices/trades", headers=office.op_key, json=prints)
    for _ in range(5):  # and five revaluations that change nothing
        valuation.revalue(session, now=f.AT, pledge_ids=[office.active["id"]])
    stored = session.execute(
        sql_text("SELECT count(*) FROM valuation WHERE pledge_id = :p"), {"p": office.active["id"]}
    ).scalar_one()
    op = sign_in(client, "op-one")
    first = op.get(f"/console/pledges/{office.active['id']}").text
    rows = re.findall(r'<tr><td class="nowrap">\d{4}-\d{2}-\d{2}</td>', first)
    assert len(rows) == 20 and "更早的估值" in first
    older = re.search(r'href="(/console/pledges/[^"]+\?before=\d+)#valuations"', first)
    assert older is not None
    second = op.get(older.group(1)).text
    shown = len(rows) + len(re.findall(r'<tr><td class="nowrap">\d{4}-\d{2}-\d{2}</td>', second))
    assert shown < stored  # the repeats are left out
