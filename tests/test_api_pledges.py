"""The pledge lifecycle through the HTTP API: banks ask, the exchange confirms, units freeze and release."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from registry.clock import FixedClock
from registry.pledge import service as pledges
from registry.principal import Role
from tests import factories as f
from tests.desk import Desk, ask, confirm, pledge_of, register, units
from tests.test_api_ledger import snapshot


def test_register_confirm_top_up_partial_release_full_release(
    client: TestClient, desk: Desk, session: Session
) -> None:
    pledge = register(client, desk, 4000)
    assert pledge["status"] == "pending" and pledge["registration_no"] is None
    assert pledge["held_quantity"] == 4000 and pledge["quantity"] == 0 and pledge["hold_expires_at"]
    assert [b["status"] for b in pledge["blocks"]] == ["held"]
    assert pledge["loan"]["principal"] == "1000000.00" and pledge["terms"]["warning_ratio"] == "1.3000"
    assert units(client, desk) == {"available": 6000, "held": 4000}

    queue = client.get("/v1/instructions", headers=desk.op1, params={"status": "pending"}).json()["items"]
    register_instruction = next(i for i in queue if i["pledge_id"] == pledge["id"])
    assert register_instruction["type"] == "register"
    done = confirm(client, desk.op1, register_instruction)
    assert (
        done.status_code == 200
        and done.json()["status"] == "confirmed"
        and done.json()["decided_by"] == "张三"
    )
    pledge = pledge_of(client, desk, pledge)
    assert pledge["status"] == "active" and re.fullmatch(r"ZY-\d{4}-\d{6}", pledge["registration_no"])
    assert pledge["quantity"] == 4000 and pledge["held_quantity"] == 0 and pledge["hold_expires_at"] is None
    assert units(client, desk) == {"available": 6000, "frozen": 4000}

    top_up = ask(client, desk, pledge, type="top_up", quantity=1000)
    assert units(client, desk) == {"available": 5000, "frozen": 4000, "held": 1000}
    confirm(client, desk.op2, top_up)
    assert pledge_of(client, desk, pledge)["quantity"] == 5000

    partial = ask(
        client,
        desk,
        pledge,
        type="release",
        quantity=2000,
        outstanding_principal="400000.00",
        reason="repaid 600,000",
    )
    assert confirm(client, desk.op1, partial).json()["applied_quantity"] == 2000
    pledge = pledge_of(client, desk, pledge)
    assert pledge["status"] == "active" and pledge["quantity"] == 3000
    assert pledge["loan"]["outstanding_principal"] == "400000.00"
    assert units(client, desk) == {"available": 7000, "frozen": 3000}

    full = ask(client, desk, pledge, type="release", outstanding_principal="0.00")
    assert confirm(client, desk.op2, full).json()["applied_quantity"] == 3000
    pledge = pledge_of(client, desk, pledge)
    assert pledge["status"] == "released" and pledge["quantity"] == 0 and pledge["closed_at"]
    assert units(client, desk) == {"available": 10_000}
    assert [i["type"] for i in pledge["instructions"]] == ["register", "top_up", "release", "release"]

    # The trail names the instruction, the bank it was for and the operator who confirmed it.
    history = client.get(f"/v1/units/CCER/{desk.serial}/history", headers=desk.op1).json()["items"]
    assert [e["kind"] for e in history] == ["issue", "hold", "freeze", "unfreeze"]
    freeze = history[2]
    assert freeze["instruction_id"] == register_instruction["id"] and freeze["operator"] == "张三"
    assert freeze["on_behalf_of"] == pledge["pledgee_party_id"]


def test_register_then_reject_lifts_the_hold_for_good(client: TestClient, desk: Desk) -> None:
    pledge = register(client, desk, 4000)
    instruction = pledge["instructions"][0]
    assert (
        client.post(f"/v1/instructions/{instruction['id']}/reject", headers=desk.op1, json={}).status_code
        == 422
    )
    rejected = client.post(
        f"/v1/instructions/{instruction['id']}/reject",
        headers=desk.op1,
        json={"reason": "ownership could not be confirmed"},
    )
    assert (
        rejected.status_code == 200
        and rejected.json()["decision_reason"] == "ownership could not be confirmed"
    )
    assert pledge_of(client, desk, pledge)["status"] == "rejected"
    assert units(client, desk) == {"available": 10_000}
    # A rejected instruction can never be confirmed later.
    late = confirm(client, desk.op2, instruction)
    assert late.status_code == 409 and late.json()["code"] == "invalid_state"
    assert units(client, desk) == {"available": 10_000}


def test_disposal_needs_four_eyes_on_the_same_terms(client: TestClient, desk: Desk, session: Session) -> None:
    pledge = register(client, desk, 4000)
    confirm(client, desk.op1, pledge["instructions"][0])
    dispose = ask(client, desk, pledge, type="dispose", reason="default on 2026-09-30")
    first = confirm(client, desk.op1, dispose, price="68.50")
    assert first.status_code == 200 and first.json()["status"] == "pending"
    assert first.json()["review"] == {
        "by": "张三", "at": first.json()["reviewed_at"], "to_account_id": desk.bank_account,
        "price": "68.50", "proceeds": "274000.00",
    }  # fmt: skip
    assert units(client, desk) == {"available": 6000, "frozen": 4000}
    same = confirm(client, desk.op1, dispose)
    assert same.status_code == 409 and "four eyes" in same.json()["detail"]
    # The second operator's other price is not applied: it is a new review, by that operator.
    other = confirm(client, desk.op2, dispose, price="70.00")
    assert other.status_code == 200 and other.json()["status"] == "pending"
    assert other.json()["review"]["by"] == "李四" and other.json()["review"]["proceeds"] == "280000.00"
    assert units(client, desk) == {"available": 6000, "frozen": 4000}
    assert confirm(client, desk.op2, dispose).status_code == 409  # 李四 cannot confirm 李四's review
    applied = confirm(client, desk.op1, dispose)  # 张三 confirms exactly what 李四 reviewed
    assert applied.status_code == 200, applied.text
    body = applied.json()
    assert body["status"] == "confirmed" and body["decided_by"] == "张三" and body["reviewed_by"] == "李四"
    assert body["applied_quantity"] == 4000 and body["price"] == "70.00" and body["proceeds"] == "280000.00"
    assert body["to_account_id"] == desk.bank_account
    assert pledge_of(client, desk, pledge)["status"] == "disposed"
    assert units(client, desk) == {"available": 6000}
    bank_units = client.get(f"/v1/accounts/{desk.bank_account}/holdings", headers=desk.op1).json()["totals"]
    assert bank_units == [{"credit_type": "CCER", "status": "available", "quantity": 4000, "blocks": 1}]
    kinds = session.execute(
        text("SELECT kind, operator FROM pledge_event WHERE instruction_id = :i ORDER BY seq"),
        {"i": dispose["id"]},
    ).all()
    assert [tuple(k) for k in kinds] == [
        ("ask", None),
        ("review", "张三"),
        ("review", "李四"),
        ("confirm", "张三"),
    ]


def test_disposal_to_a_buyer_at_auction(client: TestClient, desk: Desk, session: Session) -> None:
    buyer = f.account(session)
    pledge = register(client, desk, 1000)
    confirm(client, desk.op1, pledge["instructions"][0])
    dispose = ask(client, desk, pledge, type="dispose", quantity=400)
    confirm(client, desk.op1, dispose, buyer_account_id=str(buyer.id), proceeds="27200.00")
    done = confirm(client, desk.op2, dispose)  # "confirm these terms"
    assert done.json()["to_account_id"] == str(buyer.id) and done.json()["proceeds"] == "27200.00"
    assert pledge_of(client, desk, pledge)["status"] == "active"  # 600 units still pledged


def test_pledged_units_cannot_be_transferred_retired_or_pledged_again(
    client: TestClient, desk: Desk, session: Session
) -> None:
    other = f.account(session)
    pledge = register(client, desk, 9000)
    confirm(client, desk.op1, pledge["instructions"][0])
    before = snapshot(session)
    for path, body in [
        (
            "/v1/transfers",
            {
                "from_account_id": desk.account,
                "to_account_id": str(other.id),
                "blocks": [{"credit_type": "CCER", "serial_start": desk.serial, "serial_end": desk.serial}],
            },
        ),
        (
            "/v1/transfers",
            {
                "from_account_id": desk.account,
                "to_account_id": str(other.id),
                "credit_type": "CCER",
                "quantity": 1001,
            },
        ),
        ("/v1/retirements", {"account_id": desk.account, "credit_type": "CCER", "quantity": 1001}),
    ]:
        response = client.post(path, headers=desk.op1, json=body)
        assert response.status_code == 409 and response.json()["code"] == "insufficient_units", response.text
    assert snapshot(session) == before
    # Another bank may ask (it learns nothing); the pledgor's consent cannot hold units already pledged.
    again = client.post(
        "/v1/pledges", headers=desk.other_bank, json=f.pledge_body(desk.account, desk.borrower, 1001)
    )
    assert again.status_code == 201 and again.json()["held_quantity"] == 0
    consent = client.post(
        f"/v1/instructions/{again.json()['instructions'][0]['id']}/consent", headers=desk.pledgor
    )
    assert consent.status_code == 409 and consent.json()["code"] == "insufficient_units"
    assert (
        client.get(f"/v1/pledges/{again.json()['id']}", headers=desk.other_bank).json()["held_quantity"] == 0
    )
    assert units(client, desk) == {"available": 1000, "frozen": 9000}


def test_a_release_larger_than_the_pledge_is_refused(
    client: TestClient, desk: Desk, session: Session
) -> None:
    pledge = register(client, desk, 1000)
    confirm(client, desk.op1, pledge["instructions"][0])
    before = snapshot(session)
    response = client.post(
        f"/v1/pledges/{pledge['id']}/instructions",
        headers=desk.bank,
        json={"type": "release", "quantity": 1001},
    )
    assert response.status_code == 409 and response.json()["code"] == "insufficient_units"
    assert snapshot(session) == before


def test_one_instruction_waits_at_a_time_and_the_bank_can_cancel_it(client: TestClient, desk: Desk) -> None:
    pledge = register(client, desk, 1000)
    confirm(client, desk.op1, pledge["instructions"][0])
    top_up = ask(client, desk, pledge, type="top_up", quantity=500)
    second = client.post(
        f"/v1/pledges/{pledge['id']}/instructions",
        headers=desk.bank,
        json={"type": "release", "quantity": 10},
    )
    assert second.status_code == 409 and second.json()["code"] == "invalid_state"
    assert client.post(f"/v1/instructions/{top_up['id']}/cancel", headers=desk.other_bank).status_code == 404
    cancelled = client.post(f"/v1/instructions/{top_up['id']}/cancel", headers=desk.bank)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert units(client, desk) == {"available": 9000, "frozen": 1000}
    assert pledge_of(client, desk, pledge)["status"] == "active"
    assert confirm(client, desk.op1, top_up).status_code == 409


def test_instructions_that_do_not_fit_the_state(client: TestClient, desk: Desk) -> None:
    pending = register(client, desk, 100)
    early = client.post(
        f"/v1/pledges/{pending['id']}/instructions", headers=desk.bank, json={"type": "release"}
    )
    assert early.status_code == 409 and early.json()["code"] == "invalid_state"
    client.post(f"/v1/instructions/{pending['instructions'][0]['id']}/cancel", headers=desk.bank)
    assert pledge_of(client, desk, pending)["status"] == "cancelled"
    closed = client.post(
        f"/v1/pledges/{pending['id']}/instructions", headers=desk.bank, json={"type": "top_up", "quantity": 1}
    )
    assert closed.status_code == 409


def test_an_unconfirmed_request_lapses(
    client: TestClient, desk: Desk, session: Session, clock: FixedClock
) -> None:
    pledge = register(client, desk, 3000)  # Monday 2026-03-02, 09:30 in Shanghai
    assert pledge["hold_expires_at"].startswith("2026-03-09")  # five business days later
    clock.advance(timedelta(days=7, hours=1))
    late = confirm(client, desk.op1, pledge["instructions"][0])
    assert late.status_code == 409 and "lapsed" in late.json()["detail"]
    assert pledges.expire_lapsed(session, f.system(clock.now())) >= 1
    assert pledge_of(client, desk, pledge)["status"] == "expired"
    assert units(client, desk) == {"available": 10_000}


BAD_PLEDGES: list[tuple[str, dict[str, Any], int, str]] = [
    (
        "maturity before start",
        {
            "loan": {
                "contract_no": "X",
                "principal": "1.00",
                "start_date": "2026-03-02",
                "maturity_date": "2026-03-01",
            }
        },
        422,
        "maturity_date",
    ),
    (
        "zero principal",
        {
            "loan": {
                "contract_no": "X",
                "principal": "0",
                "start_date": "2026-03-02",
                "maturity_date": "2027-03-01",
            }
        },
        422,
        "principal",
    ),
    (
        "principal with fractions of a fen",
        {
            "loan": {
                "contract_no": "X",
                "principal": "10.001",
                "start_date": "2026-03-02",
                "maturity_date": "2027-03-01",
            }
        },
        422,
        "principal",
    ),
    (
        "foreign currency",
        {
            "loan": {
                "contract_no": "X",
                "principal": "10.00",
                "currency": "USD",
                "start_date": "2026-03-02",
                "maturity_date": "2027-03-01",
            }
        },
        422,
        "currency",
    ),
    (
        "disposal above warning",
        {"terms": {"max_pledge_rate": "0.7", "warning_ratio": "1.1", "disposal_ratio": "1.3"}},
        422,
        "disposal_ratio",
    ),
    (
        "pledge rate above 1",
        {"terms": {"max_pledge_rate": "1.5", "warning_ratio": "1.3", "disposal_ratio": "1.1"}},
        422,
        "max_pledge_rate",
    ),
    ("unknown credit type", {"collateral": {"credit_type": "NOPE", "quantity": 5}}, 404, "not_found"),
    ("no collateral", {"collateral": {}}, 422, "collateral"),
    (
        "unknown pledgor account",
        {"pledgor_account_id": "00000000-0000-0000-0000-000000000001"},
        404,
        "pledgor_account_id",
    ),
    (
        "unknown borrower",
        {"borrower_party_id": "00000000-0000-0000-0000-000000000001"},
        404,
        "borrower_party_id",
    ),
]


@pytest.mark.parametrize(
    ("case", "override", "status", "mentions"), BAD_PLEDGES, ids=[c[0] for c in BAD_PLEDGES]
)
def test_bad_registrations_change_nothing(
    client: TestClient,
    desk: Desk,
    session: Session,
    case: str,
    override: dict[str, Any],
    status: int,
    mentions: str,
) -> None:
    before = snapshot(session)
    response = client.post(
        "/v1/pledges", headers=desk.bank, json=f.pledge_body(desk.account, desk.borrower, 100, **override)
    )
    assert response.status_code == status, response.text
    assert mentions in response.text and response.headers["content-type"] == "application/problem+json"
    assert snapshot(session) == before
    assert session.execute(text("SELECT count(*) FROM pledge")).scalar_one() == 0


def test_a_retried_registration_makes_one_pledge(client: TestClient, desk: Desk, session: Session) -> None:
    body = f.pledge_body(desk.account, desk.borrower, 500)
    headers = {**desk.bank, "Idempotency-Key": "loan-77-pledge"}
    first = client.post("/v1/pledges", headers=headers, json=body)
    retry = client.post("/v1/pledges", headers=headers, json=body)
    assert first.status_code == retry.status_code == 201 and first.content == retry.content
    assert session.execute(text("SELECT count(*) FROM pledge")).scalar_one() == 1
    assert units(client, desk) == {"available": 10_000}  # nothing is held before the pledgor agrees


def test_who_sees_which_pledge(client: TestClient, desk: Desk, session: Session) -> None:
    pledge = register(client, desk, 100)
    stranger = f.auth(f.key(session, f.party(session), Role.HOLDER))
    assert client.get(f"/v1/pledges/{pledge['id']}", headers=desk.holder).status_code == 200  # the borrower
    assert client.get(f"/v1/pledges/{pledge['id']}", headers=stranger).status_code == 404
    assert client.get(f"/v1/pledges/{pledge['id']}", headers=desk.other_bank).status_code == 404
    assert client.get("/v1/pledges", headers=desk.other_bank).json()["items"] == []
    assert [p["id"] for p in client.get("/v1/pledges", headers=desk.holder).json()["items"]] == [pledge["id"]]
    assert client.get("/v1/instructions", headers=desk.other_bank).json()["items"] == []
    holder_write = client.post(
        f"/v1/pledges/{pledge['id']}/instructions", headers=desk.holder, json={"type": "release"}
    )
    assert holder_write.status_code == 403


def test_the_documented_state_machine_is_the_one_the_service_follows() -> None:
    from pathlib import Path

    from registry.pledge.states import table_markdown

    doc = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    assert table_markdown() in doc


def test_a_registration_answers_what_reading_the_pledge_answers(
    client: TestClient, desk: Desk, session: Session
) -> None:
    """The bank's request is answered without reading it back (nothing is held yet); the pledgor's own
    request, which holds its units at once, is read back. Either way the answer is the pledge as read."""
    by_bank = client.post(
        "/v1/pledges", headers=desk.bank, json=f.pledge_body(desk.account, desk.borrower, 40)
    )
    assert by_bank.status_code == 201, by_bank.text
    assert by_bank.json() == client.get(f"/v1/pledges/{by_bank.json()['id']}", headers=desk.bank).json()
    bank_id = str(session.execute(text("SELECT pledgee_party_id FROM pledge")).scalar_one())
    body = f.pledge_body(desk.account, desk.borrower, 25, pledgee_party_id=bank_id)
    by_pledgor = client.post("/v1/pledges", headers=desk.pledgor, json=body)
    assert by_pledgor.status_code == 201, by_pledgor.text
    assert by_pledgor.json()["held_quantity"] == 25
    assert (
        by_pledgor.json() == client.get(f"/v1/pledges/{by_pledgor.json()['id']}", headers=desk.pledgor).json()
    )


def test_an_instruction_of_a_pledge_one_may_not_see_names_no_pledge(client: TestClient, desk: Desk) -> None:
    pledge = register(client, desk, 30)
    instruction_id = pledge["instructions"][0]["id"]
    for path in ("consent", "decline", "cancel"):
        refused = client.post(
            f"/v1/instructions/{instruction_id}/{path}", headers=desk.other_bank, json={"reason": "not ours"}
        )
        assert refused.status_code == 404, refused.text
        assert pledge["id"] not in refused.text and instruction_id in refused.text
    read = client.get(f"/v1/instructions/{instruction_id}", headers=desk.other_bank)
    assert read.status_code == 404 and pledge["id"] not in read.text and instruction_id in read.text
    unknown = client.post(f"/v1/instructions/{pledge['id']}/cancel", headers=desk.other_bank)
    assert unknown.status_code == 404 and unknown.json()["title"] == refused.json()["title"]


def _instruction_writes(session: Session) -> int:
    """UPDATEs of instruction rows so far in the test's transaction (the requests' savepoints included)."""
    return int(
        session.execute(
            text(
                "SELECT coalesce(sum(n_tup_upd), 0) FROM pg_stat_xact_user_tables WHERE relname = 'instruction'"
            )
        ).scalar_one()
    )


@pytest.mark.parametrize("quantity", [None, 1000])  # the whole pledge (it closes), part of it (it stays)
def test_a_release_s_confirmation_writes_its_instruction_once(
    client: TestClient, desk: Desk, session: Session, quantity: int | None
) -> None:
    pledge = register(client, desk, 4000)
    assert confirm(client, desk.op1, pledge["instructions"][0]).status_code == 200
    release = ask(client, desk, pledge, type="release", **({"quantity": quantity} if quantity else {}))
    before = _instruction_writes(session)
    done = confirm(client, desk.op1, release)
    assert done.status_code == 200 and done.json()["applied_quantity"] == (quantity or 4000)
    # The decision (status, who, when, the applied quantity) in one statement, not a flush and then that.
    assert _instruction_writes(session) - before == 1


def test_a_disposal_s_applying_confirmation_writes_its_instruction_once(
    client: TestClient, desk: Desk, session: Session
) -> None:
    pledge = register(client, desk, 4000)
    assert confirm(client, desk.op1, pledge["instructions"][0]).status_code == 200
    dispose = ask(client, desk, pledge, type="dispose", quantity=1000)
    assert confirm(client, desk.op1, dispose, price="68.50").json()["status"] == "pending"  # 张三 reviews
    before = _instruction_writes(session)
    applied = confirm(client, desk.op2, dispose)  # 李四 applies exactly what 张三 reviewed
    assert applied.status_code == 200 and applied.json()["applied_quantity"] == 1000
    # The terms, the applied quantity and the decision in one statement, not a flush and then that.
    assert _instruction_writes(session) - before == 1


def test_a_confirmation_the_database_will_not_value_is_not_made(
    client: TestClient, desk: Desk, session: Session
) -> None:
    """The confirmation values its pledge in its own transaction, without a savepoint to fall back on: if
    the database refused that valuation (no input can make it: tests/hostile/test_jobs.py), nothing is
    confirmed, frozen or certified, and the caller gets a 409 problem saying so, not a 500."""
    pledge = register(client, desk, 4000)
    held = units(client, desk)
    session.execute(text(f"""
        CREATE FUNCTION pg_temp.refuse_valuation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.pledge_id = '{pledge["id"]}'::uuid THEN
                RAISE EXCEPTION 'numeric field overflow' USING ERRCODE = 'numeric_value_out_of_range';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_valuation BEFORE INSERT ON valuation
            FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse_valuation();
    """))  # fmt: skip
    refused = confirm(client, desk.op1, pledge["instructions"][0])
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_state", refused.text
    assert "cannot be valued" in refused.json()["detail"] and pledge["id"] not in refused.json()["detail"]
    assert refused.headers["content-type"].startswith("application/problem+json")
    after = pledge_of(client, desk, pledge)
    assert after["status"] == "pending" and after["registration_no"] is None
    assert after["instructions"][0]["status"] == "pending" and units(client, desk) == held
    assert client.get(f"/v1/pledges/{pledge['id']}/certificate", headers=desk.bank).status_code == 404
    session.execute(text("DROP TRIGGER refuse_valuation ON valuation"))
    assert confirm(client, desk.op1, pledge["instructions"][0]).status_code == 200  # and it can be made
