"""Every input validated once, the same everywhere, attacked as a hostile bank would (issue 13).

Each crafted input below reached a 500, or was accepted where it should not have been: strict integers,
money as decimal strings, cursors of the wrong shape, days out of range, control and bidi characters in
console forms and on the command line, and CSV cells a spreadsheet would run as formulas."""

from __future__ import annotations

import base64
import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text as sql
from sqlmodel import Session

from registry import text
from registry.cli import main
from registry.report import export
from tests import factories as f
from tests.desk import Desk, confirm, register
from tests.test_console import Office, csrf_of, office, refused, sign_in  # noqa: F401 (office: a fixture)


def cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def is_problem(answer: Any, status: int) -> bool:
    return bool(answer.status_code == status and answer.headers["content-type"] == "application/problem+json")


# --- strict integers, money as strings -------------------------------------------------------------------


@pytest.mark.parametrize("quantity", [True, "5", 1000.0, 1.5, None, [5]])
def test_a_quantity_is_a_json_integer(client: TestClient, desk: Desk, quantity: Any) -> None:
    body = f.pledge_body(desk.account, desk.borrower)
    body["collateral"] = {"credit_type": "CCER", "quantity": quantity}
    answer = client.post("/v1/pledges", headers=desk.bank, json=body)
    assert is_problem(answer, 422), answer.text  # `true` made a 1-unit pledge
    assert client.get("/v1/pledges", headers=desk.bank).json()["items"] == []


@pytest.mark.parametrize(
    "change",
    [{"quantity": True}, {"quantity": "10"}, {"quantity": 10.0}, {"vintage": "2024"}, {"vintage": 2024.0},
     {"vintage": False}],
)  # fmt: skip
def test_issuance_integers_are_strict(client: TestClient, desk: Desk, change: dict[str, Any]) -> None:
    body = {"credit_type": "CCER", "project_code": "P-1", "project_type": "forestry", "vintage": 2024,
            "quantity": 10, "account_id": desk.account, **change}  # fmt: skip
    assert is_problem(client.post("/v1/issuances", headers=desk.op1, json=body), 422)


@pytest.mark.parametrize("block", [{"serial_start": True, "serial_end": 1}, {"serial_start": "1", "serial_end": 2},
                                   {"serial_start": 1.0, "serial_end": 2}])  # fmt: skip
def test_serials_are_strict(client: TestClient, desk: Desk, block: dict[str, Any]) -> None:
    body = {"from_account_id": desk.account, "to_account_id": desk.bank_account,
            "blocks": [{"credit_type": "CCER", **block}]}  # fmt: skip
    assert is_problem(client.post("/v1/transfers", headers=desk.op1, json=body), 422)


@pytest.mark.parametrize("change", [{"price": 66.5}, {"price": 66}, {"volume": 10.0}, {"volume": True},
                                    {"volume": "10"}, {"trade_date": 1772409600}])  # fmt: skip
def test_a_print_takes_money_as_a_string_and_integers_as_integers(
    client: TestClient, desk: Desk, change: dict[str, Any]
) -> None:
    trade = {"credit_type": "CCER", "trade_date": "2026-02-27", "price": "66.50", "volume": 10, **change}
    answer = client.post("/v1/prices/trades", headers=desk.op1, json=[trade])
    assert is_problem(answer, 422), answer.text
    if "price" in change:
        assert "decimal string" in answer.json()["detail"]


def test_query_parameters_are_still_parsed_from_text(client: TestClient, desk: Desk) -> None:
    assert client.get("/v1/alerts", params={"limit": "5"}, headers=desk.bank).status_code == 200
    assert client.get(f"/v1/units/CCER/{desk.serial}/history", headers=desk.op1).status_code == 200


# --- cursors -------------------------------------------------------------------------------------------


def _cursor_paths(client: TestClient, desk: Desk, session: Session) -> list[str]:
    pledge = register(client, desk, 100)
    return [
        "/v1/instructions",
        "/v1/alerts",
        "/v1/webhook/deliveries",
        f"/v1/units/CCER/{desk.serial}/history",
        f"/v1/pledges/{pledge['id']}/valuations",
        f"/v1/accounts/{desk.account}/holdings",
        "/v1/pledges",
        "/v1/parties",
        "/v1/accounts",
        "/v1/issuances",
    ]


CRAFTED = [True, False, [True, True], [True, 1], {}, [], "x", 1e308, -1, [1], [1, 2, 3], [[1, 2], [3]],
           {"a": [1]}, 2**64, None, 1.5, "", [-1, 5]]  # fmt: skip


def test_crafted_cursors_are_422_on_every_list(client: TestClient, desk: Desk, session: Session) -> None:
    """`true` is an int to Python: `?cursor=dHJ1ZQ` (and `[true,true]` on holdings) were 500s."""
    paths = _cursor_paths(client, desk, session)
    for path in paths:
        for value in CRAFTED:
            answer = client.get(path, params={"cursor": cursor(value)}, headers=desk.op1)
            assert answer.status_code < 500, f"{path} cursor={value!r}: {answer.status_code}"
            if value is True or value == [True, True]:
                assert is_problem(answer, 422), f"{path} cursor={value!r}: {answer.status_code}"
        for raw in ("dHJ1ZQ", "!!!", "é", "MS4wZTMwOQ", "=" * 4, "a"):
            assert client.get(path, params={"cursor": raw}, headers=desk.op1).status_code < 500


def test_a_cursor_the_api_made_still_works(client: TestClient, desk: Desk) -> None:
    first = client.get(f"/v1/accounts/{desk.account}/holdings", params={"limit": 1}, headers=desk.op1).json()
    after = client.get(f"/v1/accounts/{desk.account}/holdings",
                       params={"limit": 1, "cursor": first["next_cursor"]}, headers=desk.op1)  # fmt: skip
    assert after.status_code == 200


# --- days ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{"to": "0001-01-01"}, {"from": "0001-01-01"}, {"to": "9999-12-31"},
                                    {"to": "2026-03-03"}, {"from": "1999-12-31"}])  # fmt: skip
def test_price_queries_have_day_bounds(client: TestClient, desk: Desk, params: dict[str, str]) -> None:
    for who in (desk.bank, desk.op1):  # `to=0001-01-01` was an OverflowError for any role
        answer = client.get("/v1/prices/CCER", params=params, headers=who)
        assert is_problem(answer, 422), answer.text
        assert answer.json()["field"] in params


@pytest.mark.parametrize("day", ["2026-03-03", "2099-01-01", "1999-12-31", "0001-01-01"])
def test_prints_are_for_days_that_have_traded(client: TestClient, desk: Desk, day: str) -> None:
    """The clock says 2026-03-02 in Beijing: a print for tomorrow is refused, with the field named."""
    trade = {"credit_type": "CCER", "trade_date": day, "price": "66.50", "volume": 10}
    answer = client.post("/v1/prices/trades", headers=desk.op1, json=[trade])
    assert is_problem(answer, 422) and answer.json()["field"] == "body[0].trade_date"
    today = {**trade, "trade_date": "2026-03-02"}
    assert client.post("/v1/prices/trades", headers=desk.op1, json=[today]).status_code == 201


def test_report_days_are_not_in_the_future(client: TestClient, desk: Desk) -> None:
    book = client.get("/v1/reports/collateral-book", params={"as_of": "2026-03-03"}, headers=desk.bank)
    assert is_problem(book, 422) and book.json()["field"] == "as_of"
    assert (
        client.get(
            "/v1/reports/collateral-book", params={"as_of": "2026-03-02"}, headers=desk.bank
        ).status_code
        == 200
    )
    stats = client.get(
        "/v1/reports/exchange", params={"from": "2026-03-01", "to": "2026-03-03"}, headers=desk.op1
    )
    assert is_problem(stats, 422) and stats.json()["field"] == "to"
    old = client.get(
        "/v1/reports/exchange", params={"from": "0001-01-01", "to": "2026-03-02"}, headers=desk.op1
    )
    assert is_problem(old, 422) and old.json()["field"] == "from"


# --- text ----------------------------------------------------------------------------------------------

HOSTILE_TEXT = ["權屬存疑\x1b[2J\x1b[31mAPPROVED", "line one\r\nforged: entry", "rejected\u202egnp.exe",
                "x\u2066y\u2069", "nul\x00byte", "c1\x85next", "bell\x07"]  # fmt: skip


@pytest.mark.parametrize("reason", HOSTILE_TEXT)
def test_a_console_reason_follows_the_api_text_rule(
    client: TestClient,
    office: Office,  # noqa: F811
    session: Session,
    reason: str,
) -> None:
    instruction = office.pending["instructions"][0]["id"]
    events = session.execute(sql("SELECT count(*) FROM audit_event")).scalar_one()
    api = client.post(
        f"/v1/instructions/{instruction}/reject", headers=office.op_key, json={"reason": reason}
    )
    assert is_problem(api, 422)
    op = sign_in(client, "op-one")
    form = op.post(
        f"/console/instructions/{instruction}/reject", data={"csrf": csrf_of(op), "reason": reason}
    )
    assert "文字不得含有控制字符" in refused(op, form, "/console/queue")  # the page says why, in Chinese
    status = client.get(f"/v1/instructions/{instruction}", headers=office.bank_key).json()["status"]
    assert status == "pending"  # nothing decided, nothing in the trail
    assert session.execute(sql("SELECT count(*) FROM audit_event")).scalar_one() == events


def test_a_console_reason_is_kept_as_the_api_keeps_it(
    client: TestClient,
    office: Office,  # noqa: F811
) -> None:
    instruction = office.pending["instructions"][0]["id"]
    op = sign_in(client, "op-one")
    decomposed = "  Cafe\u0301 ownership not shown \n"  # NFC and stripped, as the API would keep it
    answer = op.post(
        f"/console/instructions/{instruction}/reject", data={"csrf": csrf_of(op), "reason": decomposed}
    )
    assert answer.status_code == 303
    decided = client.get(f"/v1/instructions/{instruction}", headers=office.bank_key).json()
    assert decided["decision_reason"] == "Caf\u00e9 ownership not shown"


@pytest.mark.parametrize("name", HOSTILE_TEXT)
def test_names_refuse_c1_and_bidi_controls_too(client: TestClient, desk: Desk, name: str) -> None:
    answer = client.post("/v1/parties", headers=desk.op1, json={"name": name, "kind": "enterprise"})
    assert is_problem(answer, 422)


def test_the_text_rule_is_one_function() -> None:
    assert text.clean("  e\u0301  ", max_length=5) == "\u00e9"
    for bad in HOSTILE_TEXT:
        with pytest.raises(text.BadText):
            text.clean(bad, max_length=100)
    with pytest.raises(text.BadText):
        text.clean("x" * 6, max_length=5)
    with pytest.raises(text.BadText):
        text.clean("\ud800", max_length=5)


@pytest.mark.parametrize(
    "argv",
    [["keys", "create", "--role", "bank", "--party-name", "Bank\x1b[2J"],
     ["keys", "create", "--role", "exchange", "--party-name", "Exchange", "--operator", "op\u202e1"],
     ["users", "create", "someone", "--role", "bank", "--party-name", "Bank", "--name", "Eve\r\nAdmin",
      "--password-stdin"]],
)  # fmt: skip
def test_the_command_line_follows_the_text_rule(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2  # refused before any database is opened
    assert "validation_error" in capsys.readouterr().err


# --- CSV -----------------------------------------------------------------------------------------------


def test_a_formula_in_a_project_type_is_text_in_the_csv(client: TestClient, desk: Desk) -> None:
    formula = '=HYPERLINK("http://evil.example/x","click")'
    issued = client.post("/v1/issuances", headers=desk.op1, json={
        "credit_type": "CCER", "project_code": "@SUM(A1)", "project_type": formula, "vintage": 2024,
        "quantity": 500, "account_id": desk.account})  # fmt: skip
    assert issued.status_code == 201, issued.text
    batch = issued.json()
    block = {"credit_type": "CCER", "serial_start": batch["serial_start"], "serial_end": batch["serial_end"]}
    pledge = register(client, desk, collateral={"blocks": [block]})
    instruction = pledge["instructions"][0]
    if instruction["status"] == "awaiting_consent":
        client.post(f"/v1/instructions/{instruction['id']}/consent", headers=desk.pledgor)
    assert confirm(client, desk.op1, instruction).status_code == 200
    answer = client.get("/v1/reports/collateral-book", params={"as_of": "2026-03-02", "format": "csv"},
                        headers=desk.bank)  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(answer.text.lstrip("\ufeff"))))
    cells = [r["project_type"] for r in rows if r["section"] == "group"]
    assert cells == ["'" + formula], cells  # shown as text, never evaluated


def test_every_csv_cell_of_text_is_neutralised() -> None:
    rows = [{"name": v, "figure": Decimal("-5.00"), "count": -3}
            for v in ["=1+1", "+1", "-1", "@A1", "\tx", "\rx", "\uff1d1", "plain", "a=b"]]  # fmt: skip
    out = list(csv.reader(io.StringIO(export.to_csv(rows).lstrip("\ufeff"), newline="")))
    assert [r[0] for r in out[1:]] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@A1",
        "'\tx",
        "'\rx",
        "'\uff1d1",
        "plain",
        "a=b",
    ]
    assert {(r[1], r[2]) for r in out[1:]} == {("-5.00", "-3")}  # numbers the registry computed stay numbers


# --- digits that are not ASCII ---------------------------------------------------------------------------


def test_console_search_for_a_superscript_digit_is_not_a_500(
    client: TestClient,
    office: Office,  # noqa: F811
) -> None:
    op = sign_in(client, "op-one")
    for q in ("²", "١٢٣", "𝟙", "12\u00b3"):
        assert op.get("/console/search", params={"q": q}).status_code == 200


def test_the_text_rule_refuses_exactly_its_ranges_in_every_code_point() -> None:
    """`clean` searches with one character class built from FORBIDDEN_RANGES; it refuses the same code
    points as the ranges read one by one."""
    ranges = text.FORBIDDEN_RANGES
    for point in range(0x110000):
        refused = text._FORBIDDEN_RE.search(chr(point)) is not None
        assert refused == any(lo <= point <= hi for lo, hi in ranges), point
