"""Reports checked figure by figure against a book small enough to compute by hand.

The story (Beijing time, March 2026; every CCER print at 50.00, so every unit is worth 50.00):
- 3rd 10:00, bank A registers X: pledgor P1, 2,000 forestry-2023 + 1,000 hydropower-2024 units, principal
  100,000, matures 2026-05-01; confirmed an hour later (value 150,000, coverage 1.5).
- 4th 10:00, bank A registers Y: pledgor P2, 1,000 forestry-2023, principal 45,000, matures 2027-03-01;
  confirmed an hour later (value 50,000, coverage 1.1111: below the 1.30 warning line).
- 5th 10:00, bank B registers Z: P1, 500 hydropower-2024, principal 10,000; confirmed an hour later.
- 6th, bank A asks for W, nobody confirms it: it lapses; 9th, T is asked and still waits at the end.
- 7th, bank A asks for V, rejected; 8th, bank A asks for U and cancels it. (W, T, V, U are in no figure.)
- 10th, X releases 1,000 forestry units, outstanding 60,000; 12th, Y is released in full.
- 20th, bank B disposes of Z (two operators)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from registry.calendar import EXCHANGE_TZ
from registry.clock import FixedClock
from registry.ledger import service as ledger
from registry.ledger.models import Party, PartyKind
from registry.ledger.service import Selection, SerialRange
from registry.pledge import reads
from registry.pledge import service as pledges
from registry.pledge.states import InstructionStatus, InstructionType
from registry.principal import Actor, Principal, Role
from registry.valuation import prices
from tests import factories as f


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=EXCHANGE_TZ)


def bank_asks(
    session: Session,
    lender: Party,
    account: Any,
    borrower: Party,
    blocks: list[tuple[int, int]],
    principal: str,
    maturity: date,
    day: int,
    haircut: str = "0",
) -> pledges.Registered:
    """A report story's pledge as the bank asks for it (loan C-<day>, the usual terms) on March `day`, and
    the pledgor's consent: the confirmation is the caller's."""
    made = pledges.register(
        session,
        Actor(Principal(lender.id, Role.BANK), at(day)),
        pledgor_account_id=account.id,
        borrower_party_id=borrower.id,
        loan=pledges.Loan(f"C-{day}", Decimal(principal), date(2026, 3, 1), maturity),
        collateral=Selection(blocks=[SerialRange("CCER", s, e) for s, e in blocks]),
        terms=pledges.Terms(Decimal("0.95"), Decimal("1.30"), Decimal("1.10"), haircut=Decimal(haircut)),
    )
    f.consent(session, made)
    return made


@dataclass
class Book:
    bank_a: Party
    bank_b: Party
    keys: dict[str, dict[str, str]]


@pytest.fixture
def book(session: Session, clock: FixedClock) -> Book:
    clock.at = at(31, 18)  # the reports below ask about March: the API's clock is past it (registry.calendar)
    exchange = f.the_exchange(session)
    bank_a, bank_b = (
        f.party(session, PartyKind.BANK, "银行甲 Bank A"),
        f.party(session, PartyKind.BANK, "银行乙 Bank B"),
    )
    p1, p2 = f.party(session, name="出质人一 Pledgor One"), f.party(session, name="出质人二 Pledgor Two")
    a1, a2 = f.account(session, p1), f.account(session, p2)
    system = f.system(at(1))

    def issue(account: UUID, kind: str, vintage: int, quantity: int) -> int:
        return ledger.issue(session, system, credit_type="CCER", project_code=f"P-{kind}", project_type=kind,
                            vintage=vintage, quantity=quantity, account_id=account).serial_start  # fmt: skip

    forestry1, hydro1 = issue(a1.id, "forestry", 2023, 10_000), issue(a1.id, "hydropower", 2024, 10_000)
    forestry2 = issue(a2.id, "forestry", 2023, 5_000)
    days = [date(2026, 2, 23) + timedelta(days=d) for d in range(14)]
    prices.record_trades(  # entered on the evening of the last day they print
        session,
        f.system(at(8, 18)),
        [prices.Trade("CCER", d, Decimal("50.00"), 1_000) for d in days if d.weekday() < 5],
    )

    def bank(party: Party, when: datetime) -> Actor:
        return Actor(Principal(party.id, Role.BANK), when)

    def operator(when: datetime) -> Actor:
        return Actor(Principal(exchange.id, Role.EXCHANGE, operator="op"), when)

    def register(
        lender: Party,
        account: Any,
        borrower: Party,
        blocks: list[tuple[int, int]],
        principal: str,
        maturity: date,
        day: int,
        *,
        confirm: bool = True,
    ) -> UUID:
        made = bank_asks(session, lender, account, borrower, blocks, principal, maturity, day)
        if confirm:
            pledges.confirm(session, operator(at(day, 11)), made.instruction.id)
        return made.pledge.id

    x = register(
        bank_a,
        a1,
        p1,
        [(forestry1, forestry1 + 1999), (hydro1, hydro1 + 999)],
        "100000.00",
        date(2026, 5, 1),
        3,
    )
    y = register(bank_a, a2, p2, [(forestry2, forestry2 + 999)], "45000.00", date(2027, 3, 1), 4)
    z = register(bank_b, a1, p1, [(hydro1 + 1000, hydro1 + 1499)], "10000.00", date(2026, 9, 1), 5)

    def unregistered(day: int, offset: int) -> UUID:
        blocks = [(forestry1 + offset, forestry1 + offset + 99)]
        return register(bank_a, a1, p1, blocks, "1000.00", date(2026, 9, 1), day, confirm=False)

    def waiting(pledge: UUID) -> UUID:
        asked = reads.list_instructions(
            session, Principal(None, Role.EXCHANGE), status=InstructionStatus.PENDING, after=None, limit=50
        )
        return next(i.id for i in asked if i.pledge_id == pledge)

    unregistered(6, 5000)  # W: nobody confirms it; it lapses on the 13th (five business days)
    unregistered(9, 8000)  # T: still waiting at the end
    pledges.reject(session, operator(at(7, 11)), waiting(unregistered(7, 6000)), reason="ownership not shown")
    pledges.cancel(session, bank(bank_a, at(8, 11)), waiting(unregistered(8, 7000)))
    release = pledges.request(session, bank(bank_a, at(10)), x, kind=InstructionType.RELEASE,
                              selection=Selection(blocks=[SerialRange("CCER", forestry1, forestry1 + 999)]),
                              outstanding_principal=Decimal("60000.00"))  # fmt: skip
    pledges.confirm(session, operator(at(10, 11)), release.id)
    full = pledges.request(session, bank(bank_a, at(12)), y, kind=InstructionType.RELEASE)
    pledges.confirm(session, operator(at(12, 11)), full.id)
    assert pledges.expire_lapsed(session, Actor(Principal(None, Role.SYSTEM), at(14))) == 1  # W
    f.account(session, bank_b)  # where the disposed units go
    disposal = pledges.request(
        session, bank(bank_b, at(20)), z, kind=InstructionType.DISPOSE, reason="default"
    )
    pledges.confirm(session, operator(at(20, 11)), disposal.id)
    second = Actor(Principal(exchange.id, Role.EXCHANGE, operator="op2"), at(20, 12))
    pledges.confirm(session, second, disposal.id)
    keys = {
        "a": f.auth(f.key(session, bank_a, Role.BANK)),
        "b": f.auth(f.key(session, bank_b, Role.BANK)),
        "exchange": f.auth(f.key(session, exchange, Role.EXCHANGE)),
        "auditor": f.auth(f.key(session, f.party(session, PartyKind.AUDITOR), Role.AUDITOR)),
        "holder": f.auth(f.key(session, p1, Role.HOLDER)),
    }
    return Book(bank_a, bank_b, keys)


def book_of(client: TestClient, book: Book, as_of: str, who: str = "a", **params: str) -> dict[str, Any]:
    answer = client.get(
        "/v1/reports/collateral-book", params={"as_of": as_of, **params}, headers=book.keys[who]
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def figures(line: dict[str, Any]) -> tuple[Any, ...]:
    return (line["pledges"], line["units"], line["collateral_value"], line["outstanding_principal"],
            line["coverage_ratio"], line["at_warning"], line["at_disposal"])  # fmt: skip


def test_the_book_in_the_past_before_the_release(client: TestClient, book: Book) -> None:
    body = book_of(client, book, "2026-03-06")
    assert body["bank"] == "银行甲 Bank A"
    lines = {(ln["credit_type"], ln["project_type"], ln["vintage"]): figures(ln) for ln in body["lines"]}
    assert lines == {
        # X's 2,000 (its 100,000 split 2/3) and Y's 1,000 (45,000, at warning): 150,000 / 111,666.67
        ("CCER", "forestry", 2023): (2, 3000, "150000.00", "111666.67", "1.3433", 1, 0),
        # X's other 1,000 (1/3 of 100,000)
        ("CCER", "hydropower", 2024): (1, 1000, "50000.00", "33333.33", "1.5000", 0, 0),
    }
    assert figures(body["total"]) == (2, 4000, "200000.00", "145000.00", "1.3793", 1, 0)
    ladder = {rung["bucket"]: (rung["pledges"], rung["outstanding_principal"]) for rung in body["ladder"]}
    assert ladder["31-90"] == (1, "100000.00")  # X matures 2026-05-01: 56 days on
    assert ladder["181-365"] == (1, "45000.00")  # Y: 360 days on
    assert ladder["0-30"] == ladder["overdue"] == ladder["over 365"] == (0, "0.00")
    bands = {band["band"]: band["pledges"] for band in body["coverage_bands"]}
    assert bands == {"under 1.10": 0, "1.10-1.30": 1, "1.30-1.50": 0, "1.50-2.00": 1, "2.00 and over": 0,
                     "unvalued": 0}  # Y at 1.1111, X at 1.5000  # fmt: skip


def test_the_book_after_the_releases(client: TestClient, book: Book) -> None:
    body = book_of(client, book, "2026-03-13")
    lines = {(ln["project_type"], ln["vintage"]): figures(ln) for ln in body["lines"]}
    assert lines == {
        ("forestry", 2023): (1, 1000, "50000.00", "30000.00", "1.6667", 0, 0),
        ("hydropower", 2024): (1, 1000, "50000.00", "30000.00", "1.6667", 0, 0),
    }
    assert figures(body["total"]) == (1, 2000, "100000.00", "60000.00", "1.6667", 0, 0)
    before = book_of(client, book, "2026-03-02")  # nothing registered yet
    assert before["lines"] == [] and figures(before["total"]) == (0, 0, "0.00", "0.00", None, 0, 0)


def test_who_may_ask_for_which_book(client: TestClient, book: Book) -> None:
    other = client.get("/v1/reports/collateral-book", params={"as_of": "2026-03-06", "bank_id": str(book.bank_a.id)},
                       headers=book.keys["b"])  # fmt: skip
    assert other.status_code == 404  # bank B cannot ask for bank A's book
    own = book_of(client, book, "2026-03-06", "b")
    assert own["bank"] == "银行乙 Bank B" and figures(own["total"]) == (
        1,
        500,
        "25000.00",
        "10000.00",
        "2.5000",
        0,
        0,
    )
    after = book_of(client, book, "2026-03-21", "b")  # Z disposed of on the 20th
    assert after["lines"] == [] and figures(after["total"])[:2] == (0, 0)
    for who in ("exchange", "auditor"):
        assert (
            figures(book_of(client, book, "2026-03-06", who, bank_id=str(book.bank_a.id))["total"])[1] == 4000
        )
    missing = client.get(
        "/v1/reports/collateral-book", params={"as_of": "2026-03-06"}, headers=book.keys["exchange"]
    )
    assert missing.status_code == 422 and missing.json()["field"] == "bank_id"
    assert (
        client.get(
            "/v1/reports/collateral-book", params={"as_of": "2026-03-06"}, headers=book.keys["holder"]
        ).status_code
        == 403
    )
    stats = client.get(
        "/v1/reports/exchange", params={"from": "2026-03-01", "to": "2026-03-31"}, headers=book.keys["a"]
    )
    assert stats.status_code == 403


def test_the_exchange_statistics(client: TestClient, book: Book) -> None:
    march = client.get("/v1/reports/exchange", params={"from": "2026-03-01", "to": "2026-03-31"},
                       headers=book.keys["exchange"]).json()  # fmt: skip
    assert (march["registered"], march["released"], march["disposed"]) == (3, 1, 1)  # V, U never registered
    assert march["financing_secured"] == "155000.00"
    assert march["units_frozen"] == {"CCER": 2000}  # X's 2,000 at the end of March; Z was disposed of
    assert march["largest_pledgors"] == [{"name": "出质人一 Pledgor One", "pledges": 1, "units": 2000}]
    assert march["confirmation_hours_avg"] == "1.0" and march["confirmation_hours_median"] == "1.0"
    assert march["months"] == [{"month": "2026-03", "registered": 3, "financing": "155000.00"}]
    early = client.get("/v1/reports/exchange", params={"from": "2026-03-01", "to": "2026-03-04"},
                       headers=book.keys["auditor"]).json()  # fmt: skip
    assert (early["registered"], early["released"], early["financing_secured"]) == (2, 0, "145000.00")
    assert early["units_frozen"] == {"CCER": 4000}
    assert [(p["name"], p["units"]) for p in early["largest_pledgors"]] == [
        ("出质人一 Pledgor One", 3000),
        ("出质人二 Pledgor Two", 1000),
    ]
    backwards = client.get("/v1/reports/exchange", params={"from": "2026-03-31", "to": "2026-03-01"},
                           headers=book.keys["exchange"])  # fmt: skip
    assert backwards.status_code == 422


def test_csv_for_spreadsheets(client: TestClient, book: Book) -> None:
    answer = client.get("/v1/reports/collateral-book", params={"as_of": "2026-03-06", "format": "csv"},
                        headers=book.keys["a"])  # fmt: skip
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text.lstrip("\ufeff"))))
    total = next(r for r in rows if r["section"] == "total")
    assert (total["units"], total["collateral_value"], total["coverage_ratio"]) == (
        "4000",
        "200000.00",
        "1.3793",
    )
    assert [r["bucket"] for r in rows if r["section"] == "maturity"][:2] == ["overdue", "0-30"]
    bands = {r["bucket"]: r["pledges"] for r in rows if r["section"] == "coverage"}
    assert bands["1.10-1.30"] == "1" and bands["1.50-2.00"] == "1"  # Y at 1.11, X at 1.50 (every section)
    stats = client.get("/v1/reports/exchange", params={"from": "2026-03-01", "to": "2026-03-31", "format": "csv"},
                       headers=book.keys["exchange"]).text  # fmt: skip
    assert "financing_secured,155000.00" in stats and "units_frozen:CCER,2000" in stats


def test_pdfs_with_charts(client: TestClient, book: Book) -> None:
    from pypdf import PdfReader

    answer = client.get("/v1/reports/collateral-book", params={"as_of": "2026-03-06", "format": "pdf"},
                        headers=book.keys["a"])  # fmt: skip
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/pdf"
    words = "".join(page.extract_text() for page in PdfReader(io.BytesIO(answer.content)).pages)
    for expected in ["质押品台账", "银行甲 Bank A", "2026-03-06", "200,000.00", "145,000.00", "4,000", "137.93%",
                     "Outstanding by days to maturity", "Pledges by coverage"]:  # fmt: skip
        assert expected in words, expected
    stats = client.get("/v1/reports/exchange", params={"from": "2026-03-01", "to": "2026-03-31", "format": "pdf"},
                       headers=book.keys["exchange"])  # fmt: skip
    text_ = "".join(page.extract_text() for page in PdfReader(io.BytesIO(stats.content)).pages)
    assert "155,000.00" in text_ and "出质人一 Pledgor One" in text_ and "Financing secured by month" in text_


def test_every_month_of_the_period_is_in_the_figures_and_the_chart(
    client: TestClient, book: Book, session: Session
) -> None:
    from registry.report.exchange_stats import exchange_stats
    from registry.report.render import exchange_stats_html

    quarter = client.get("/v1/reports/exchange", params={"from": "2026-01-15", "to": "2026-03-31"},
                         headers=book.keys["exchange"]).json()  # fmt: skip
    assert quarter["months"] == [
        {"month": "2026-01", "registered": 0, "financing": "0.00"},  # quiet months are months too
        {"month": "2026-02", "registered": 0, "financing": "0.00"},
        {"month": "2026-03", "registered": 3, "financing": "155000.00"},
    ]
    csv_text = client.get("/v1/reports/exchange", params={"from": "2026-01-15", "to": "2026-03-31", "format": "csv"},
                          headers=book.keys["exchange"]).text  # fmt: skip
    assert "financing:2026-02,0.00" in csv_text and "registered:2026-03,3" in csv_text
    stats = exchange_stats(session, Principal(None, Role.AUDITOR), period_from=date(2026, 1, 15),
                           period_to=date(2026, 3, 31), today=date(2026, 3, 31))  # fmt: skip
    chart = exchange_stats_html(stats, "the exchange")
    assert all(f">{month}</text>" in chart for month in ("2026-01", "2026-02", "2026-03"))


def test_the_json_the_exporter_writes_is_what_the_schema_says(client: TestClient, book: Book) -> None:
    """The API sends the exporter's bytes (so that the CLI can write the same); the documented schema
    must describe them exactly."""
    import json

    from api.schemas.reports import CollateralBookRead, ExchangeStatsRead

    for path, params, schema in (
        (
            "/v1/reports/collateral-book",
            {"as_of": "2026-03-06", "bank_id": str(book.bank_a.id)},
            CollateralBookRead,
        ),
        ("/v1/reports/exchange", {"from": "2026-03-01", "to": "2026-03-31"}, ExchangeStatsRead),
    ):
        answer = client.get(path, params=params, headers=book.keys["exchange"])
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        assert schema.model_validate_json(answer.content).model_dump(mode="json") == json.loads(
            answer.content
        )
