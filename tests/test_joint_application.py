"""Joint application and binding approvals: no party's units are held, frozen or sold without its say.

Through the HTTP API: a registration or top-up needs the pledgee bank and the pledgor; a bank learns
nothing of an account before its owner agrees; four eyes binds a disposal's terms and compares persons;
confirmation re-checks the loan at today's price; one open pledge per loan; idempotency per API key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from registry.clock import FixedClock
from registry.ledger.models import PartyKind
from registry.pledge import service as pledges
from registry.principal import Role
from tests import factories as f
from tests.desk import Desk, ask, confirm, pledge_of, register, units
from tests.test_api_ledger import snapshot


def post(client: TestClient, path: str, headers: dict[str, str], body: Any = None) -> Any:
    return client.post(path, headers=headers, json=body)


def instruction_of(pledge: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = pledge["instructions"][-1]
    return found


def queue_ids(client: TestClient, desk: Desk) -> set[str]:
    queued = client.get("/v1/instructions", headers=desk.op1, params={"status": "pending"}).json()["items"]
    return {i["id"] for i in queued}


def prices(client: TestClient, desk: Desk, *prints: tuple[str, str]) -> None:
    body = [
        {"credit_type": "CCER", "trade_date": day, "price": price, "volume": 1000} for day, price in prints
    ]
    answer = client.post("/v1/prices/trades", headers=desk.op1, json=body)
    assert answer.status_code in (200, 201), answer.text


# --- a bank asks, the pledgor agrees -------------------------------------------------------------


def test_a_banks_request_holds_nothing_until_the_pledgor_consents(
    client: TestClient, desk: Desk, session: Session
) -> None:
    before = units(client, desk)
    asked = register(client, desk, 4000, consent=False)
    request = instruction_of(asked)
    assert asked["status"] == "pending" and asked["held_quantity"] == 0 and asked["blocks"] == []
    assert (
        request["status"] == "awaiting_consent" and request["consent_party_id"] == asked["pledgor_party_id"]
    )
    assert units(client, desk) == before == {"available": 10_000}
    assert request["id"] not in queue_ids(client, desk)
    early = confirm(client, desk.op1, request)
    assert early.status_code == 409 and early.json()["code"] == "invalid_state"

    # The pledgor finds it among the requests waiting for its consent, and agrees.
    waiting = client.get("/v1/instructions", headers=desk.pledgor, params={"awaiting_my_consent": "true"})
    assert [i["id"] for i in waiting.json()["items"]] == [request["id"]]
    agreed = post(client, f"/v1/instructions/{request['id']}/consent", desk.pledgor)
    assert (
        agreed.status_code == 200 and agreed.json()["status"] == "pending" and agreed.json()["consented_at"]
    )
    assert units(client, desk) == {"available": 6000, "held": 4000}
    assert request["id"] in queue_ids(client, desk)
    assert confirm(client, desk.op1, request).status_code == 200
    assert pledge_of(client, desk, asked)["status"] == "active"
    # The trail names who took each step: the hold is the pledgor's, the freeze the operator's.
    history = client.get(f"/v1/units/CCER/{desk.serial}/history", headers=desk.op1).json()["items"]
    assert [(e["kind"], e["actor_role"]) for e in history] == [
        ("issue", "system"), ("hold", "holder"), ("freeze", "exchange"),
    ]  # fmt: skip
    trail = session.execute(
        text("SELECT kind, actor_role FROM pledge_event WHERE pledge_id = :p ORDER BY seq"),
        {"p": asked["id"]},
    ).all()
    assert [tuple(e) for e in trail] == [("ask", "bank"), ("consent", "holder"), ("confirm", "exchange")]


def test_a_declined_request_holds_nothing_and_never_reaches_the_queue(
    client: TestClient, desk: Desk, session: Session
) -> None:
    asked = register(client, desk, 4000, consent=False)
    request = instruction_of(asked)
    no_reason = post(client, f"/v1/instructions/{request['id']}/decline", desk.pledgor, {})
    assert no_reason.status_code == 422
    declined = post(
        client,
        f"/v1/instructions/{request['id']}/decline",
        desk.pledgor,
        {"reason": "we did not agree to this"},
    )
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert declined.json()["decision_reason"] == "we did not agree to this"
    assert pledge_of(client, desk, asked)["status"] == "declined"
    assert units(client, desk) == {"available": 10_000} and request["id"] not in queue_ids(client, desk)
    late = post(client, f"/v1/instructions/{request['id']}/consent", desk.pledgor)
    assert late.status_code == 409
    reason = session.execute(
        text("SELECT reason FROM pledge_event WHERE instruction_id = :i AND kind = 'decline'"),
        {"i": request["id"]},
    ).scalar_one()
    assert reason == "we did not agree to this"


def test_a_request_nobody_consents_to_lapses(
    client: TestClient, desk: Desk, session: Session, clock: FixedClock
) -> None:
    asked = register(client, desk, 3000, consent=False)
    request = instruction_of(asked)
    assert request["hold_expires_at"].startswith("2026-03-09")  # five business days to agree
    clock.advance(timedelta(days=7, hours=1))
    late = post(client, f"/v1/instructions/{request['id']}/consent", desk.pledgor)
    assert late.status_code == 409 and "lapsed" in late.json()["detail"]
    assert pledges.expire_lapsed(session, f.system(clock.now())) == 1
    assert pledge_of(client, desk, asked)["status"] == "expired"
    assert units(client, desk) == {"available": 10_000} and request["id"] not in queue_ids(client, desk)


def test_the_consent_restarts_the_clock_for_the_exchange(
    client: TestClient, desk: Desk, clock: FixedClock
) -> None:
    asked = register(client, desk, 100, consent=False)
    clock.advance(timedelta(days=3))  # Thursday
    agreed = post(client, f"/v1/instructions/{instruction_of(asked)['id']}/consent", desk.pledgor).json()
    assert agreed["hold_expires_at"].startswith("2026-03-12")  # five business days from the consent


def test_the_hold_setting_is_the_time_to_agree_and_to_confirm(
    client: TestClient, desk: Desk, settings: Any, clock: FixedClock
) -> None:
    """REGISTRY_HOLD_BUSINESS_DAYS=2: two business days for the pledgor, then two for the exchange."""
    settings.hold_business_days = 2
    asked = register(client, desk, 100, consent=False)
    assert instruction_of(asked)["hold_expires_at"].startswith("2026-03-04")  # Monday + 2 business days
    clock.advance(timedelta(days=1))
    agreed = post(client, f"/v1/instructions/{instruction_of(asked)['id']}/consent", desk.pledgor).json()
    assert agreed["hold_expires_at"].startswith("2026-03-05")


def test_a_shortfall_at_consent_is_the_pledgors_to_see(
    client: TestClient, desk: Desk, session: Session
) -> None:
    asked = register(client, desk, 10_001, consent=False)  # more than the account holds: the bank is not told
    assert asked["held_quantity"] == 0
    before = snapshot(session)
    agreed = post(client, f"/v1/instructions/{instruction_of(asked)['id']}/consent", desk.pledgor)
    assert agreed.status_code == 409 and agreed.json()["code"] == "insufficient_units"
    assert "10000 available" in agreed.json()["detail"]  # the pledgor sees its own holdings
    assert snapshot(session) == before
    assert instruction_of(pledge_of(client, desk, asked))["status"] == "awaiting_consent"


# --- who may consent -----------------------------------------------------------------------------


def test_only_the_pledgor_consents_to_a_banks_request(
    client: TestClient, desk: Desk, session: Session
) -> None:
    asked = register(client, desk, 100, consent=False)
    path = f"/v1/instructions/{instruction_of(asked)['id']}"
    stranger = f.auth(f.key(session, f.party(session), Role.HOLDER))
    assert post(client, f"{path}/consent", desk.other_bank).status_code == 404  # cannot see it
    assert post(client, f"{path}/consent", stranger).status_code == 404  # a holder of another account
    for refused in (desk.bank, desk.holder, desk.op1):  # the asker, the borrower, the exchange
        answer = post(client, f"{path}/consent", refused)
        assert answer.status_code == 403 and answer.headers["content-type"] == "application/problem+json"
        assert post(client, f"{path}/decline", refused, {"reason": "x"}).status_code == 403
    assert units(client, desk) == {"available": 10_000}
    assert post(client, f"{path}/consent", desk.pledgor).status_code == 200


def test_a_pledgor_asks_and_the_bank_consents(client: TestClient, desk: Desk, session: Session) -> None:
    bank_id = client.get(f"/v1/pledges/{register(client, desk, 1)['id']}", headers=desk.bank).json()[
        "pledgee_party_id"
    ]
    body = f.pledge_body(desk.account, desk.borrower, 2500, pledgee_party_id=bank_id)
    asked = client.post("/v1/pledges", headers=desk.pledgor, json=body)
    assert asked.status_code == 201, asked.text
    request = instruction_of(asked.json())
    # The pledgor agreed by asking: its units are held now; the request waits for the bank.
    assert asked.json()["held_quantity"] == 2500 and request["status"] == "awaiting_consent"
    assert request["consent_party_id"] == bank_id and request["id"] not in queue_ids(client, desk)
    assert post(client, f"/v1/instructions/{request['id']}/consent", desk.pledgor).status_code == 403
    assert post(client, f"/v1/instructions/{request['id']}/consent", desk.other_bank).status_code == 404
    agreed = post(client, f"/v1/instructions/{request['id']}/consent", desk.bank)
    assert agreed.status_code == 200 and request["id"] in queue_ids(client, desk)
    assert confirm(client, desk.op1, request).status_code == 200
    assert pledge_of(client, desk, asked.json())["quantity"] == 2500


def test_a_pledgor_asks_only_for_its_own_account_and_a_real_bank(
    client: TestClient, desk: Desk, session: Session
) -> None:
    other = f.account(session)
    f.issue(session, other.id, 100)
    bank = f.party(session, PartyKind.BANK)
    mine = client.post(
        "/v1/pledges",
        headers=desk.pledgor,
        json=f.pledge_body(other.id, desk.borrower, 10, pledgee_party_id=str(bank.id)),
    )
    assert mine.status_code == 404  # another's account: as if it did not exist
    no_bank = client.post(
        "/v1/pledges", headers=desk.pledgor, json=f.pledge_body(desk.account, desk.borrower, 10)
    )
    assert no_bank.status_code == 422 and "pledgee_party_id" in no_bank.text
    not_a_bank = client.post(
        "/v1/pledges", headers=desk.pledgor,
        json=f.pledge_body(desk.account, desk.borrower, 10, pledgee_party_id=desk.borrower),
    )  # fmt: skip
    assert not_a_bank.status_code == 404
    short = client.post(
        "/v1/pledges", headers=desk.pledgor,
        json=f.pledge_body(desk.account, desk.borrower, 10_001, pledgee_party_id=str(bank.id)),
    )  # fmt: skip
    assert short.status_code == 409 and short.json()["code"] == "insufficient_units"


def test_a_top_up_is_a_joint_application_too(client: TestClient, desk: Desk) -> None:
    pledge = register(client, desk, 1000)
    confirm(client, desk.op1, pledge["instructions"][0])
    offered = client.post(
        f"/v1/pledges/{pledge['id']}/instructions",
        headers=desk.bank,
        json={"type": "top_up", "quantity": 500},
    )
    assert offered.status_code == 201 and offered.json()["status"] == "awaiting_consent"
    assert units(client, desk) == {"available": 9000, "frozen": 1000}
    assert post(client, f"/v1/instructions/{offered.json()['id']}/consent", desk.pledgor).status_code == 200
    assert units(client, desk) == {"available": 8500, "frozen": 1000, "held": 500}
    assert confirm(client, desk.op2, offered.json()).status_code == 200
    # The pledgor may offer a top-up itself: held at once, for the bank to accept.
    more = client.post(
        f"/v1/pledges/{pledge['id']}/instructions",
        headers=desk.pledgor,
        json={"type": "top_up", "quantity": 200},
    )
    assert more.status_code == 201 and more.json()["consent_party_id"] == pledge["pledgee_party_id"]
    assert units(client, desk) == {"available": 8300, "frozen": 1500, "held": 200}
    # Release and disposal stay the bank's to ask; the borrower asks for nothing.
    assert (
        post(
            client, f"/v1/instructions/{more.json()['id']}/decline", desk.bank, {"reason": "not needed"}
        ).status_code
        == 200
    )
    assert units(client, desk) == {"available": 8500, "frozen": 1500}
    for who in (desk.pledgor, desk.holder):
        release = client.post(
            f"/v1/pledges/{pledge['id']}/instructions", headers=who, json={"type": "release"}
        )
        assert release.status_code == 403
    assert client.post(f"/v1/pledges/{pledge['id']}/instructions", headers=desk.holder,
                       json={"type": "top_up", "quantity": 1}).status_code == 403  # fmt: skip


def test_a_bank_or_a_pledgor_withdraws_only_its_own_request(client: TestClient, desk: Desk) -> None:
    asked = register(client, desk, 100, consent=False)
    path = f"/v1/instructions/{instruction_of(asked)['id']}"
    assert post(client, f"{path}/cancel", desk.pledgor).status_code == 403  # it declines instead
    assert post(client, f"{path}/cancel", desk.other_bank).status_code == 404
    withdrawn = post(client, f"{path}/cancel", desk.bank)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "cancelled"
    assert pledge_of(client, desk, asked)["status"] == "cancelled"


# --- no oracle -----------------------------------------------------------------------------------


def _strip(body: Any) -> Any:
    """A registration's answer without what differs by construction (ids, times, the account named)."""
    volatile = {"id", "pledge_id", "pledgor_account_id", "pledgor_party_id", "borrower_party_id",
                "consent_party_id", "created_at", "hold_expires_at", "contract_no"}  # fmt: skip
    if isinstance(body, dict):
        return {k: _strip(v) for k, v in body.items() if k not in volatile}
    if isinstance(body, list):
        return [_strip(v) for v in body]
    return body


@pytest.mark.parametrize("named", [False, True], ids=["quantity", "named blocks"])
def test_a_banks_request_reveals_nothing_of_the_account(
    client: TestClient, desk: Desk, session: Session, named: bool
) -> None:
    """The same answer for an account with 0, 10 or 10^6 units, for a quantity or for named blocks over
    the whole serial space, before its owner has agreed."""
    answers = []
    for held in (0, 10, 1_000_000):
        owner = f.party(session)
        account = f.account(session, owner)
        if held:
            f.issue(session, account.id, held)
        collateral = (
            {"blocks": [{"credit_type": "CCER", "serial_start": 1, "serial_end": 1 << 39}]}
            if named
            else {"credit_type": "CCER", "quantity": 500_000}
        )
        response = client.post(
            "/v1/pledges", headers=desk.bank,
            json=f.pledge_body(account.id, owner.id, 1, collateral=collateral,
                               loan={"contract_no": f"NO-ORACLE-{held}", "principal": "1000000.00",
                                     "start_date": "2026-03-02", "maturity_date": "2027-03-01"}),
        )  # fmt: skip
        answers.append((response.status_code, _strip(response.json())))
    assert answers[0][0] == 201 and answers[0] == answers[1] == answers[2]


def test_an_account_is_found_by_its_number_and_its_holders_credit_code(
    client: TestClient, desk: Desk, session: Session
) -> None:
    account = client.get(f"/v1/accounts/{desk.account}", headers=desk.op1).json()
    party = client.get(f"/v1/parties/{account['party_id']}", headers=desk.op1).json()
    found = client.get(
        "/v1/accounts/lookup",
        headers=desk.bank,
        params={"number": account["number"], "credit_code": party["credit_code"]},
    )
    assert found.status_code == 200
    assert found.json() == {
        "id": desk.account,
        "number": account["number"],
        "party_id": party["id"],
        "party_name": party["name"],
    }
    other = f.party(session)
    for number, code in [(account["number"], other.credit_code), ("RA9999999999", party["credit_code"])]:
        miss = client.get(
            "/v1/accounts/lookup", headers=desk.bank, params={"number": number, "credit_code": code}
        )
        assert miss.status_code == 404 and miss.headers["content-type"] == "application/problem+json"
        assert "holding" not in miss.text and party["name"] not in miss.text
    own = {"number": account["number"], "credit_code": party["credit_code"]}
    assert client.get("/v1/accounts/lookup", headers=desk.pledgor, params=own).status_code == 403


def test_lookups_that_miss_are_throttled_per_key(client: TestClient, desk: Desk, session: Session) -> None:
    code = str(f.party(session).credit_code)
    statuses = [
        client.get(
            "/v1/accounts/lookup", headers=desk.bank, params={"number": f"RA{n:010d}", "credit_code": code}
        ).status_code
        for n in range(25)
    ]
    assert statuses[:20] == [404] * 20 and set(statuses[21:]) == {429}
    # Another bank's key is not slowed down.
    assert client.get("/v1/accounts/lookup", headers=desk.other_bank,
                      params={"number": "RA0", "credit_code": code}).status_code == 404  # fmt: skip


# --- four eyes compares persons ------------------------------------------------------------------


def test_four_eyes_needs_named_operators_and_two_persons(
    client: TestClient, desk: Desk, session: Session
) -> None:
    pledge = register(client, desk, 1000)
    confirm(client, desk.op1, pledge["instructions"][0])
    dispose = ask(client, desk, pledge, type="dispose", reason="default")
    exchange = f.the_exchange(session)
    nameless = f.auth(f.key(session, exchange, Role.EXCHANGE))
    answer = confirm(client, nameless, dispose)
    assert answer.status_code == 403 and "operator" in answer.json()["detail"]
    assert confirm(client, desk.op1, dispose, price="70.00").status_code == 200  # 张三 reviews
    same_person = f.auth(f.key(session, exchange, Role.EXCHANGE, operator="张三"))  # 张三's second key
    refused = confirm(client, same_person, dispose)
    assert refused.status_code == 409 and "four eyes" in refused.json()["detail"]
    assert units(client, desk) == {"available": 9000, "frozen": 1000}
    assert confirm(client, desk.op2, dispose).status_code == 200
    assert pledge_of(client, desk, pledge)["status"] == "disposed"


def test_the_database_refuses_a_disposal_applied_on_other_terms(
    client: TestClient, desk: Desk, session: Session
) -> None:
    from sqlalchemy.exc import IntegrityError

    pledge = register(client, desk, 1000)
    confirm(client, desk.op1, pledge["instructions"][0])
    dispose = ask(client, desk, pledge, type="dispose")
    confirm(client, desk.op1, dispose, price="70.00")
    with pytest.raises(IntegrityError, match="ck_instruction_four_eyes"), session.begin_nested():
        session.execute(
            text("UPDATE instruction SET status = 'confirmed', decided_at = now(), decided_by = '李四', "
                 "price = 1.00, proceeds = 1000.00, to_account_id = review_to_account_id WHERE id = :i"),
            {"i": dispose["id"]},
        )  # fmt: skip
    with pytest.raises(IntegrityError, match="ck_instruction_four_eyes"), session.begin_nested():
        session.execute(
            text("UPDATE instruction SET status = 'confirmed', decided_at = now(), decided_by = reviewed_by, "
                 "price = review_price, proceeds = review_proceeds, to_account_id = review_to_account_id "
                 "WHERE id = :i"),
            {"i": dispose["id"]},
        )  # fmt: skip


def test_an_idempotency_key_belongs_to_the_api_key_that_sent_it(client: TestClient, desk: Desk) -> None:
    """Operator 2 confirming with the key string operator 1 used for the review applies the disposal."""
    pledge = register(client, desk, 1000)
    confirm(client, desk.op1, pledge["instructions"][0])
    dispose = ask(client, desk, pledge, type="dispose")
    path = f"/v1/instructions/{dispose['id']}/confirm"
    review = client.post(path, headers={**desk.op1, "Idempotency-Key": "dispose-1"}, json={"price": "70.00"})
    assert review.json()["status"] == "pending"
    applied = client.post(path, headers={**desk.op2, "Idempotency-Key": "dispose-1"}, json={"price": "70.00"})
    assert applied.status_code == 200 and "Idempotent-Replayed" not in applied.headers
    assert applied.json()["status"] == "confirmed" and applied.json()["decided_by"] == "李四"
    replay = client.post(path, headers={**desk.op2, "Idempotency-Key": "dispose-1"}, json={"price": "70.00"})
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.content == applied.content


# --- confirmation is a decision on today's facts -------------------------------------------------


def test_a_confirmation_after_a_price_fall_past_the_cap_is_refused(
    client: TestClient, desk: Desk, session: Session
) -> None:
    prices(client, desk, ("2026-02-27", "400.00"))  # 4,000 units worth 1.6 M: a pledge rate of 0.625
    asked = register(client, desk, 4000)
    request = instruction_of(asked)
    prices(client, desk, ("2026-03-02", "300.00"))  # now worth 1.2 M: 0.8333, above the lender's 0.70
    queued = client.get("/v1/instructions", headers=desk.op1, params={"status": "pending"}).json()["items"]
    shown = next(i for i in queued if i["id"] == request["id"])["assessment"]
    assert shown["price"] == "300.00" and shown["collateral_value"] == "1200000.00"
    assert shown["pledge_rate"] == "0.8333" and shown["within_terms"] is False
    before = snapshot(session)
    refused = confirm(client, desk.op1, request)
    assert refused.status_code == 409 and refused.json()["code"] == "collateral_insufficient"
    assert refused.json()["pledge_rate"] == "0.8333" and refused.json()["max_pledge_rate"] == "0.7000"
    assert snapshot(session) == before and units(client, desk) == {"available": 6000, "held": 4000}
    # The price comes back: the same request is confirmed.
    prices(client, desk, ("2026-03-02", "380.00"))
    assert confirm(client, desk.op1, request).status_code == 200


def test_a_confirmation_under_the_disposal_line_is_refused(client: TestClient, desk: Desk) -> None:
    prices(client, desk, ("2026-02-27", "300.00"))
    terms = {"max_pledge_rate": "0.95", "warning_ratio": "1.30", "disposal_ratio": "1.10"}
    asked = register(client, desk, 4000, terms=terms)  # worth 1.2 M: coverage 1.20, rate 0.8333
    prices(client, desk, ("2026-03-02", "270.00"))  # 1.08 M: within 0.95, but under the 1.10 disposal line
    refused = confirm(client, desk.op1, instruction_of(asked))
    assert refused.status_code == 409 and refused.json()["level"] == "disposal"
    assert refused.json()["coverage_ratio"] == "1.0800"


def test_the_vwap_window_setting_drives_the_confirmation(
    client: TestClient, desk: Desk, settings: Any
) -> None:
    """REGISTRY_VWAP_DAYS=2: the confirmation values at the 2-day VWAP, like the price endpoint does."""
    settings.vwap_days = 2
    prices(client, desk, ("2026-02-20", "100.00"), ("2026-02-26", "400.00"), ("2026-02-27", "400.00"))
    asked = register(
        client,
        desk,
        4000,
        terms={
            "max_pledge_rate": "0.70",
            "warning_ratio": "1.30",
            "disposal_ratio": "1.10",
            "valuation_method": "vwap",
        },
    )
    done = confirm(client, desk.op1, instruction_of(asked))
    assert done.status_code == 200, done.text  # the 20-day VWAP (300) would be a rate of 0.83
    assert pledge_of(client, desk, asked)["valuation"]["price"] == "400.00"


# --- one open pledge per loan --------------------------------------------------------------------


def test_one_open_pledge_per_loan(client: TestClient, desk: Desk, session: Session) -> None:
    loan = {
        "contract_no": "ONE-LOAN-1",
        "principal": "1000000.00",
        "start_date": "2026-03-02",
        "maturity_date": "2027-03-01",
    }
    first = register(client, desk, 100, loan=loan)
    again = client.post(
        "/v1/pledges", headers=desk.bank, json=f.pledge_body(desk.account, desk.borrower, 100, loan=loan)
    )
    assert again.status_code == 409 and again.json()["code"] == "loan_already_pledged"
    assert again.json()["pledge_id"] == first["id"]
    # Another bank's contract of the same number is another loan.
    other = client.post(
        "/v1/pledges",
        headers=desk.other_bank,
        json=f.pledge_body(desk.account, desk.borrower, 100, loan=loan),
    )
    assert other.status_code == 201
    # A rejected registration does not block a new request for the loan; nor does a released pledge.
    client.post(
        f"/v1/instructions/{instruction_of(first)['id']}/reject", headers=desk.op1, json={"reason": "papers"}
    )
    second = register(client, desk, 100, loan=loan)
    confirm(client, desk.op1, instruction_of(second))
    assert (
        client.post(
            "/v1/pledges", headers=desk.bank, json=f.pledge_body(desk.account, desk.borrower, 1, loan=loan)
        ).status_code
        == 409
    )
    confirm(client, desk.op1, ask(client, desk, second, type="release"))
    assert register(client, desk, 100, loan=loan)["status"] == "pending"


def test_the_database_keeps_one_open_pledge_per_loan(session: Session) -> None:
    from sqlalchemy.exc import IntegrityError

    account = f.account(session)
    first = f.bare_pledge(session, account.id)
    row = session.execute(
        text("SELECT pledgee_party_id, contract_no FROM pledge WHERE id = :p"), {"p": first}
    ).one()
    with pytest.raises(IntegrityError, match="uq_pledge_open_loan"), session.begin_nested():
        session.execute(
            text("""INSERT INTO pledge SELECT gen_random_uuid(), 'pending', NULL, pledgee_party_id, pledgor_account_id,
                           pledgor_party_id, borrower_party_id, contract_no, principal, outstanding_principal,
                           currency, start_date, maturity_date, credit_type_id, max_pledge_rate, warning_ratio,
                           disposal_ratio, valuation_method, haircut, NULL, NULL, created_at
                      FROM pledge WHERE id = :p"""),
            {"p": first},
        )
    assert row.contract_no == "C-1"


# --- loans with sane bounds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loan", "field"),
    [
        ({"principal": "0.01"}, "loan.principal"),
        ({"start_date": "0001-01-01", "maturity_date": "9999-12-31"}, "loan.start_date"),
        ({"start_date": "2026-03-02", "maturity_date": "2099-12-31"}, "loan.maturity_date"),
        ({"start_date": "2020-01-01", "maturity_date": "2026-03-01"}, "loan.maturity_date"),
    ],
    ids=["a tiny principal", "dates out of era", "a 70-year term", "already matured"],
)
def test_loans_outside_sane_bounds_are_refused_at_the_door(
    client: TestClient, desk: Desk, session: Session, loan: dict[str, str], field: str
) -> None:
    body = {
        "contract_no": "B-1",
        "principal": "1000000.00",
        "start_date": "2026-03-02",
        "maturity_date": "2027-03-01",
        **loan,
    }
    before = snapshot(session)
    answer = client.post(
        "/v1/pledges", headers=desk.bank, json=f.pledge_body(desk.account, desk.borrower, 100, loan=body)
    )
    assert answer.status_code == 422 and field in answer.text, answer.text
    assert snapshot(session) == before


def test_a_borrower_without_an_account_is_found_by_its_credit_code(
    client: TestClient, desk: Desk, session: Session
) -> None:
    borrower = f.party(session)  # an affiliated company's borrower: no account of its own
    found = client.get("/v1/parties/lookup", headers=desk.bank, params={"credit_code": borrower.credit_code})
    assert found.status_code == 200
    assert found.json() == {"id": str(borrower.id), "name": borrower.name, "kind": "enterprise"}
    exchange = f.the_exchange(session)
    miss = client.get("/v1/parties/lookup", headers=desk.bank, params={"credit_code": exchange.credit_code})
    assert miss.status_code == 404  # only parties that can borrow


def test_a_top_up_is_judged_on_every_unit_it_leaves_frozen(client: TestClient, desk: Desk) -> None:
    """At its confirmation a top-up counts the units the pledge already secures with the ones it adds: a
    top-up that brings the loan back within the cap is confirmed, one too small is refused and the pledge
    keeps exactly what it had."""
    prices(client, desk, ("2026-02-27", "400.00"))  # 4,000 units worth 1.6 M against 1 M: 0.625
    pledge = register(client, desk, 4000)
    assert confirm(client, desk.op1, instruction_of(pledge)).status_code == 200
    prices(client, desk, ("2026-03-02", "300.00"))  # 4,000 units now worth 1.2 M: 0.8333, over 0.70
    small = ask(client, desk, pledge, type="top_up", quantity=100)  # 4,100 × 300: 0.8130, still over
    refused = confirm(client, desk.op1, small)
    assert refused.status_code == 409 and refused.json()["pledge_rate"] == "0.8130"
    assert units(client, desk) == {"available": 5900, "held": 100, "frozen": 4000}
    assert client.post(f"/v1/instructions/{small['id']}/cancel", headers=desk.bank).status_code == 200
    enough = ask(client, desk, pledge, type="top_up", quantity=1000)  # 5,000 × 300 = 1.5 M: 0.6667
    confirmed = confirm(client, desk.op1, enough)
    assert confirmed.status_code == 200, confirmed.text
    assert units(client, desk) == {"available": 5000, "frozen": 5000}
