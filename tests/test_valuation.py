"""Valuation from trade prices, margin / maturity / stale alerts, and their signed webhook deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from registry import outbound
from registry.alert import delivery
from registry.alert import service as alerts
from registry.alert.service import refresh_maturity
from registry.calendar import business_days_before
from registry.clock import FixedClock
from registry.ledger.models import PartyKind
from registry.ledger.service import Selection
from registry.pledge import service as pledges
from registry.pledge.states import InstructionType
from registry.principal import Role
from registry.valuation import prices
from registry.valuation import service as valuation
from registry.valuation.models import TradeKind, ValuationMethod
from registry.valuation.service import reference, revalue
from tests import factories as f
from tests.test_api_ledger import snapshot
from tests.webhooks import in_session

# Monday 2026-03-02 10:00 in Shanghai
MONDAY = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def trades(
    session: Session,
    *rows: tuple[str, str, int],
    credit_type: str = "CCER",
    kind: TradeKind = TradeKind.LISTED,
) -> None:
    prices.record_trades(session, f.system(MONDAY), [
        prices.Trade(credit_type, date.fromisoformat(d), Decimal(p), v, kind) for d, p, v in rows
    ])  # fmt: skip


@dataclass
class Book:
    bank: Any
    pledge_id: Any
    account_id: Any


def active_pledge(session: Session, *, units: int = 1000, principal: str = "50000.00",
                  method: ValuationMethod = ValuationMethod.LOWER_OF,
                  maturity: date = date(2027, 3, 1)) -> Book:  # fmt: skip
    bank = f.party(session, PartyKind.BANK)
    account = f.account(session)
    f.issue(session, account.id, units * 2)
    made = pledges.register(
        session, f.bank_actor(bank), pledgor_account_id=account.id, borrower_party_id=account.party_id,
        loan=pledges.Loan(f"JK-7-{uuid4().hex[:8]}", Decimal(principal), date(2026, 3, 2), maturity),
        collateral=Selection(credit_type="CCER", quantity=units),
        terms=pledges.Terms(Decimal("0.9"), Decimal("1.30"), Decimal("1.10"), method),
    )  # fmt: skip
    f.consent(session, made)
    pledges.confirm(session, f.exchange_actor(session), made.instruction.id)
    return Book(bank, made.pledge.id, account.id)


def open_alerts(session: Session, pledge_id: Any, kinds: str = "%") -> list[tuple[str, str]]:
    rows = session.execute(text("SELECT kind, trigger FROM alert WHERE pledge_id = :p AND status = 'open' "
                                "AND kind LIKE :k ORDER BY kind, trigger"), {"p": pledge_id, "k": kinds})  # fmt: skip
    return [(r.kind, r.trigger) for r in rows]


def all_alerts(session: Session, pledge_id: Any, kinds: str = "margin_%") -> int:
    """Alerts ever raised, open or cleared (by default the margin ones)."""
    return int(session.execute(text("SELECT count(*) FROM alert WHERE pledge_id = :p AND kind LIKE :k"),
                               {"p": pledge_id, "k": kinds}).scalar_one())  # fmt: skip


def latest_level(session: Session, pledge_id: Any) -> tuple[str | None, bool, Decimal | None]:
    row = session.execute(text("SELECT level, stale, coverage_ratio FROM valuation WHERE pledge_id = :p "
                               "ORDER BY id DESC LIMIT 1"), {"p": pledge_id}).one()  # fmt: skip
    return row.level, row.stale, row.coverage_ratio


class TestReferencePrice:
    def test_vwap_last_close_and_lower_of(self, session: Session) -> None:
        trades(
            session,
            ("2026-02-24", "70.00", 1000),
            ("2026-02-25", "64.00", 3000),
            ("2026-02-27", "66.00", 1000),
        )
        trades(session, ("2026-02-26", "50.00", 100000), kind=TradeKind.BLOCK)  # block trades are kept apart
        ref = reference(session, 1, date(2026, 3, 2), 20)
        assert ref.vwap == Decimal("65.60")  # (70·1000 + 64·3000 + 66·1000) / 5000
        assert (ref.last_close, ref.last_date) == (Decimal("66.00"), date(2026, 2, 27))
        assert ref.price(ValuationMethod.LOWER_OF) == (Decimal("65.60"), date(2026, 2, 27))
        assert ref.price(ValuationMethod.LAST_CLOSE)[0] == Decimal("66.00") and not ref.stale

    def test_no_trade_in_the_window_is_stale(self, session: Session) -> None:
        trades(session, ("2025-12-01", "71.00", 500))
        ref = reference(session, 1, date(2026, 3, 2), 20)
        assert ref.stale and ref.vwap is None and ref.price(ValuationMethod.LOWER_OF)[0] == Decimal("71.00")
        assert business_days_before(date(2026, 3, 2), 20) == date(2026, 2, 2)

    def test_a_batch_is_all_or_nothing_and_a_later_print_replaces(self, session: Session) -> None:
        trades(session, ("2026-02-27", "66.00", 1000))
        with pytest.raises(Exception, match="second listed print"):
            trades(session, ("2026-02-26", "65.00", 10), ("2026-02-26", "64.00", 10))
        loaded = prices.record_trades(session, f.system(MONDAY), [
            prices.Trade("CCER", date(2026, 2, 27), Decimal("67.00"), 1200)])  # fmt: skip
        assert (loaded.inserted, loaded.replaced) == (0, 1)
        assert reference(session, 1, date(2026, 3, 2), 20).last_close == Decimal("67.00")


class TestOneRuleInPythonAndSQL:
    """The revaluation's SQL and the assessment's Python (registry/pledge/assessment.py) value a pledge by
    the same rules: both forms run on the same inputs and must agree."""

    D1, D2, D3 = date(2026, 2, 2), date(2026, 2, 26), date(2026, 2, 27)
    # (vwap, its day, last close, its day). A VWAP always comes with a close (a trade in the window is a
    # print on or before the day), so a VWAP without one is no input.
    REFERENCES = (
        (None, None, None, None),  # no print at all
        (None, None, Decimal("71.00"), D1),  # stale: nothing in the window
        (Decimal("65.60"), D2, Decimal("66.00"), D3),  # the VWAP is lower
        (Decimal("66.00"), D2, Decimal("66.00"), D3),  # a tie: the close, and its day
        (Decimal("70.00"), D2, Decimal("66.00"), D3),  # the close is lower
    )

    def test_the_price_a_method_values_at(self, session: Session) -> None:
        sql = text(
            f"SELECT {valuation.PRICE_SQL} AS price, {valuation.PRICE_DATE_SQL} AS price_date"
            " FROM (VALUES (CAST(:method AS text))) AS p(valuation_method),"
            " (VALUES (CAST(:vwap AS numeric(12, 2)), CAST(:vwap_date AS date), CAST(:last_close AS numeric(12, 2)),"
            " CAST(:last_date AS date))) AS r(vwap, vwap_date, last_close, last_date)"
        )
        for vwap, vwap_date, last_close, last_date in self.REFERENCES:
            ref = valuation.Reference(1, vwap, vwap_date, last_close, last_date)
            for method in ValuationMethod:
                row = session.execute(sql, {"method": method, "vwap": vwap, "vwap_date": vwap_date,
                                            "last_close": last_close, "last_date": last_date}).one()  # fmt: skip
                assert (row.price, row.price_date) == ref.price(method), (method, ref)

    def test_value_coverage_pledge_rate_and_level(self, session: Session) -> None:
        warning, disposal = Decimal("1.3000"), Decimal("1.1000")
        cases = [
            (q, Decimal(p), Decimal(h), Decimal(o))
            for q in (1, 3, 1000, 10**12)
            for p in ("0.01", "0.05", "68.50", "1000000000.00")
            for h in ("0", "0.5000", "0.3333", "0.9999")  # 1 × 0.01 × 0.5 = 0.005: half a fen
            for o in ("0", "1000.00", "50000.00", "1000000000000.00")
        ]
        rows = session.execute(
            text(f"""
                WITH priced AS (
                    SELECT * FROM unnest(CAST(:q AS numeric[]), CAST(:p AS numeric(12, 2)[]),
                                         CAST(:h AS numeric(5, 4)[]), CAST(:o AS numeric(18, 2)[]))
                           WITH ORDINALITY AS t(quantity, price, haircut, outstanding_principal, n)
                ), valued AS (
                    SELECT *, {valuation.VALUE_SQL} AS value, CAST(:w AS numeric(7, 4)) AS warning_ratio,
                           CAST(:d AS numeric(7, 4)) AS disposal_ratio
                      FROM priced
                )
                SELECT value, {valuation.COVERAGE_SQL} AS coverage, {valuation.PLEDGE_RATE_SQL} AS rate,
                       {valuation.LEVEL_SQL} AS level
                  FROM valued ORDER BY n"""),
            {"q": [c[0] for c in cases], "p": [c[1] for c in cases], "h": [c[2] for c in cases],
             "o": [c[3] for c in cases], "w": warning, "d": disposal},
        ).all()  # fmt: skip
        assert len(rows) == len(cases)
        for (quantity, price, haircut, outstanding), row in zip(cases, rows, strict=True):
            made = valuation.figures(quantity=quantity, price=price, haircut=haircut, outstanding=outstanding)
            level = valuation.level(
                made.collateral_value, outstanding, warning_ratio=warning, disposal_ratio=disposal
            )
            case = (quantity, price, haircut, outstanding)
            assert (row.value, row.coverage, row.rate) == (
                made.collateral_value, made.coverage_ratio, made.pledge_rate), case  # fmt: skip
            assert row.level == level, case


class TestMarginAlerts:
    def test_a_crossing_raises_once_and_recovery_clears(self, session: Session) -> None:
        book = active_pledge(
            session, method=ValuationMethod.VWAP
        )  # 1,000 t for 50,000 CNY: lines at 65,000 and 55,000
        trades(session, ("2026-02-27", "70.00", 1000))
        revalue(session, now=MONDAY)
        assert latest_level(session, book.pledge_id) == ("ok", False, Decimal("1.4000"))
        assert open_alerts(session, book.pledge_id) == []

        trades(session, ("2026-03-02", "40.00", 1000))  # VWAP 55.00: coverage 1.10 → warning
        revalue(session, now=MONDAY)
        assert latest_level(session, book.pledge_id)[0] == "warning"
        assert open_alerts(session, book.pledge_id) == [("margin_warning", "")]
        revalue(session, now=MONDAY)  # same prices again: nothing new
        assert all_alerts(session, book.pledge_id) == 1

        trades(session, ("2026-03-02", "20.00", 3000))  # the day's print replaced: VWAP 32.50 → disposal
        revalue(session, now=MONDAY)
        assert open_alerts(session, book.pledge_id) == [("margin_disposal", ""), ("margin_warning", "")]

        trades(session, ("2026-03-02", "90.00", 3000))  # VWAP 85.00: back above the warning line
        revalue(session, now=MONDAY)
        assert open_alerts(session, book.pledge_id) == []
        assert all_alerts(session, book.pledge_id) == 2

    def test_stale_prices_are_flagged_never_silently_fresh(self, session: Session) -> None:
        book = active_pledge(session)
        trades(session, ("2025-11-03", "80.00", 1000))
        revalue(session, now=MONDAY)
        level, stale, coverage = latest_level(session, book.pledge_id)
        assert stale and level == "ok" and coverage == Decimal("1.6000")
        assert open_alerts(session, book.pledge_id) == [("price_stale", "")]
        trades(session, ("2026-02-27", "80.00", 10))
        revalue(session, now=MONDAY)
        assert open_alerts(session, book.pledge_id) == []

    def test_the_pledge_rate_cap_is_checked_at_registration(self, session: Session) -> None:
        trades(session, ("2026-02-27", "70.00", 1000))
        account = f.account(session)
        f.issue(session, account.id, 1000)
        before = snapshot(session)
        with pytest.raises(Exception, match=r"pledge rate 0\.8571") as err, session.begin_nested():
            pledges.register(
                session, f.bank_actor(f.party(session, PartyKind.BANK)), pledgor_account_id=account.id,
                borrower_party_id=account.party_id,
                loan=pledges.Loan("JK-8", Decimal("60000.00"), date(2026, 3, 2), date(2027, 3, 1)),
                collateral=Selection(credit_type="CCER", quantity=1000),
                terms=pledges.Terms(Decimal("0.70"), Decimal("1.30"), Decimal("1.10")),
            )  # fmt: skip
        assert getattr(err.value, "code", "") == "pledge_rate_exceeded"
        assert snapshot(session)[3:5] == before[3:5]  # nothing held


class TestMaturityAlerts:
    def test_reminders_on_the_right_days_then_matured_unreleased(self, session: Session) -> None:
        book = active_pledge(session, maturity=date(2026, 6, 30))

        def day(d: str) -> datetime:  # 10:00 in Shanghai
            return datetime.fromisoformat(f"{d}T02:00:00+00:00")

        refresh_maturity(session, now=day("2026-05-30"))
        assert open_alerts(session, book.pledge_id, "ma%") == []
        refresh_maturity(session, now=day("2026-05-31"))
        assert open_alerts(session, book.pledge_id, "ma%") == [("maturity_upcoming", "30")]
        refresh_maturity(session, now=day("2026-06-01"))
        assert all_alerts(session, book.pledge_id, "maturity%") == 1  # once per threshold
        refresh_maturity(session, now=day("2026-06-23"))
        refresh_maturity(session, now=day("2026-06-29"))
        assert [t for k, t in open_alerts(session, book.pledge_id, "ma%")] == ["1", "30", "7"]
        refresh_maturity(session, now=day("2026-06-30"))
        assert open_alerts(session, book.pledge_id, "ma%") == [("matured_unreleased", "")]
        release = pledges.request(session, f.bank_actor(book.bank), book.pledge_id,
                                  kind=InstructionType.RELEASE)  # fmt: skip
        pledges.confirm(session, f.exchange_actor(session), release.id)
        refresh_maturity(session, now=day("2026-07-01"))
        assert open_alerts(session, book.pledge_id, "ma%") == []


class Receiver(BaseHTTPRequestHandler):
    """The bank's end: records what arrives, answers with `status`."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    status = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(Receiver.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def deliver(session: Session, now: datetime) -> delivery.Tally:
    """The outbox run once at `now`, to loopback receivers (allowed for tests)."""
    policy = delivery.Policy(outbound.Policy(allow_private=True, timeout_s=5))
    return delivery.deliver_due(in_session(session), FixedClock(now), policy)


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    Receiver.status = 204
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/registry-alerts"
    server.shutdown()


def test_a_warning_is_delivered_once_signed_and_retried_while_the_bank_is_down(
    client: TestClient, session: Session, receiver: str, settings: Any, clock: FixedClock
) -> None:
    settings.webhook_allow_private = True
    trades(session, ("2026-02-27", "70.00", 1000))
    book = active_pledge(session)  # valued at confirmation: coverage 1.40, ok
    bank_key = f.auth(f.key(session, book.bank, Role.BANK))
    secret = "s3cret-for-hmac-0001"
    put = client.put("/v1/webhook", headers=bank_key, json={"url": receiver, "secret": secret})
    assert put.status_code == 200 and put.json()["url"] == receiver
    trades(session, ("2026-03-02", "60.00", 1000))
    revalue(session, now=MONDAY)  # the lower of VWAP 65 and close 60: coverage 1.20, warning

    Receiver.status = 503  # the bank's endpoint is down
    assert deliver(session, MONDAY).delivered == 0
    row = session.execute(
        text("SELECT status, attempts, next_attempt_at, last_error FROM webhook_delivery")
    ).one()
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "http_503")
    assert row.next_attempt_at == MONDAY + timedelta(seconds=30)
    assert deliver(session, MONDAY + timedelta(seconds=10)).delivered == 0  # not due yet
    Receiver.status = 204
    assert deliver(session, MONDAY + timedelta(seconds=31)).delivered == 1
    assert deliver(session, MONDAY + timedelta(hours=1)).delivered == 0  # once
    headers, body = Receiver.received[-1]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Registry-Signature"] == expected
    event = json.loads(body)
    assert event["event"] == "alert.raised" and event["kind"] == "margin_warning"
    assert event["pledge_id"] == str(book.pledge_id) and event["details"]["level"] == "warning"
    listed = client.get("/v1/webhook/deliveries", headers=bank_key).json()["items"]
    assert [(d["status"], d["attempts"]) for d in listed] == [("delivered", 2)]

    alerts = client.get("/v1/alerts", headers=bank_key, params={"status": "open"}).json()["items"]
    assert [a["kind"] for a in alerts] == ["margin_warning"]
    acked = client.post(f"/v1/alerts/{alerts[0]['id']}/ack", headers=bank_key)
    assert acked.status_code == 200 and acked.json()["acked_at"]
    other_bank = f.auth(f.key(session, f.party(session, PartyKind.BANK), Role.BANK))
    assert client.get("/v1/alerts", headers=other_bank).json()["items"] == []
    assert client.post(f"/v1/alerts/{alerts[0]['id']}/ack", headers=other_bank).status_code == 404


def test_a_delivery_that_never_arrives_is_marked_failed(session: Session, receiver: str) -> None:
    trades(session, ("2026-02-27", "70.00", 1000))
    book = active_pledge(session)
    session.execute(text("INSERT INTO webhook (party_id, url, secret, updated_at) VALUES (:p, :u, :s, :t)"),
                    {"p": book.bank.id, "u": receiver, "s": "x" * 16, "t": MONDAY})  # fmt: skip
    trades(session, ("2026-03-02", "50.00", 1000))
    revalue(session, now=MONDAY)
    Receiver.status = 500
    now = MONDAY
    for _ in range(delivery.MAX_ATTEMPTS):
        now += timedelta(hours=2)
        deliver(session, now)
    statuses = session.execute(text("SELECT status, attempts FROM webhook_delivery")).all()
    assert {(s.status, s.attempts) for s in statuses} == {("failed", delivery.MAX_ATTEMPTS)}


def test_prices_through_the_api(client: TestClient, session: Session) -> None:
    exchange = f.auth(f.key(session, f.party(session, PartyKind.EXCHANGE), Role.EXCHANGE))
    book = active_pledge(session)
    good = [
        {"credit_type": "CCER", "trade_date": "2026-02-26", "price": "64.00", "volume": 1000},
        {"credit_type": "CCER", "trade_date": "2026-02-27", "price": "66.00", "volume": 3000},
    ]
    bad = [*good, {"credit_type": "CCER", "trade_date": "2026-02-28", "price": "-1", "volume": 10}]
    refused = client.post("/v1/prices/trades", headers=exchange, json=bad)
    assert refused.status_code == 422 and "2.price" in refused.text
    assert session.execute(text("SELECT count(*) FROM trade_price")).scalar_one() == 0
    loaded = client.post("/v1/prices/trades", headers=exchange, json=good)
    assert loaded.status_code == 201 and loaded.json() == {"inserted": 2, "replaced": 0, "revalued": 1}
    read = client.get(
        "/v1/prices/CCER", headers=exchange, params={"from": "2026-02-01", "to": "2026-03-02"}
    ).json()
    assert [i["price"] for i in read["items"]] == ["64.00", "66.00"]
    assert read["reference"]["vwap"] == "65.50" and read["reference"]["stale"] is False
    bank_key = f.auth(f.key(session, book.bank, Role.BANK))
    pledge = client.get(f"/v1/pledges/{book.pledge_id}", headers=bank_key).json()
    assert pledge["valuation"]["price"] == "65.50" and pledge["valuation"]["collateral_value"] == "65500.00"
    history = client.get(f"/v1/pledges/{book.pledge_id}/valuations", headers=bank_key).json()["items"]
    assert history[0]["coverage_ratio"] == "1.3100" and history[0]["level"] == "ok"
    assert client.post("/v1/prices/trades", headers=bank_key, json=good).status_code == 403


def test_a_few_named_pledges_are_valued_from_their_own_blocks_through_the_blocks_index(
    session: Session,
) -> None:
    """A confirmation values its pledge: the blocks are looked up by that pledge's id on `holding` itself, not
    found by reading every pledged block and matching each against the pledges named (what the plan did when
    the pledge table's statistics were stale: 2.5 ms a confirmation with 164 pledges, growing with their
    square)."""
    at = datetime(2026, 6, 1, 10, tzinfo=UTC)
    params = {"now": at, "as_of": at.date(), "window_start": at.date(), "pledge_ids": [uuid4()]}
    statement = valuation._statement(valuation._named("pledge_ids"))  # what revalue(pledge_ids=...) runs
    session.execute(text("SET LOCAL enable_seqscan = off"))  # the suite's few blocks: a scan would do
    plan = "\n".join(session.execute(text(f"EXPLAIN {statement}"), params).scalars())
    on_blocks = [line for line in plan.splitlines() if "Index Cond:" in line and "pledge_id = ANY" in line]
    assert on_blocks, plan


def test_closing_a_pledge_clears_its_alerts_found_through_the_alerts_index(session: Session) -> None:
    """Releasing or disposing a pledge clears its open alerts (alert.service.clear_closed): they are looked
    up by that pledge's id on `alert` itself, the same rule as the valuation's blocks above."""
    at = datetime(2026, 6, 1, 10, tzinfo=UTC)
    session.execute(text("SET LOCAL enable_seqscan = off"))  # the suite's few alerts: a scan would do
    plan = "\n".join(
        session.execute(text(f"EXPLAIN {alerts._CLEAR_CLOSED}"), {"now": at, "pledge": uuid4()}).scalars()
    )
    on_alerts = [line for line in plan.splitlines() if "Index Cond:" in line and "pledge_id =" in line]
    assert on_alerts, plan


def test_releasing_a_pledge_clears_its_open_alerts_at_once_and_tells_the_bank(session: Session) -> None:
    """In the release's own transaction, before any job runs: the margin alert cleared, and the bank's
    webhook queued with the `alert.cleared` event; another pledge's open alert is left as it is."""
    trades(session, ("2026-02-27", "70.00", 1000))
    book, other = active_pledge(session), active_pledge(session)
    session.execute(text("INSERT INTO webhook (party_id, url, secret, updated_at) VALUES (:p, :u, :s, :t)"),
                    {"p": book.bank.id, "u": "https://bank.example/hook", "s": "x" * 16, "t": MONDAY})  # fmt: skip
    trades(session, ("2026-03-02", "50.00", 1000))
    revalue(session, now=MONDAY)
    assert open_alerts(session, book.pledge_id, "margin%") == open_alerts(session, other.pledge_id, "margin%")
    assert open_alerts(session, book.pledge_id, "margin%")  # a warning each
    release = pledges.request(session, f.bank_actor(book.bank), book.pledge_id, kind=InstructionType.RELEASE)
    pledges.confirm(session, f.exchange_actor(session), release.id)
    assert open_alerts(session, book.pledge_id) == [] and open_alerts(session, other.pledge_id, "margin%")
    queued = session.execute(text(
        "SELECT d.event, d.payload->>'pledge_id' AS pledge FROM webhook_delivery d JOIN alert a ON a.id = d.alert_id "
        "WHERE a.pledge_id = :p ORDER BY d.id"), {"p": book.pledge_id}).all()  # fmt: skip
    n = sum(q.event == "alert.raised" for q in queued)
    assert n and [q.event for q in queued] == ["alert.raised"] * n + ["alert.cleared"] * n
    assert {q.pledge for q in queued} == {str(book.pledge_id)}
