"""Money and ratios are decimal strings of fixed places wherever they leave the registry (registry/money.py):
API responses, the alert details PostgreSQL writes, and the webhook payloads that copy them."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from api.schemas.valuation import AlertEvent
from registry.alert import delivery
from registry.money import money_sql, money_text, ratio_sql, ratio_text
from registry.principal import Role
from registry.valuation.service import revalue
from tests import factories as f
from tests.test_valuation import MONDAY, active_pledge, trades

VALUES = ["0", "5", "0.005", "0.015", "0.025", "2.675", "-0.005", "-0.001", "68.5", "1000000", "1E+3",
          "123.456789", "0.00005", "0.00015", "99999999999.995", "1.30", "0.7"]  # fmt: skip


@pytest.mark.parametrize("value", VALUES)
def test_sql_and_python_write_money_and_ratios_alike(session: Session, value: str) -> None:
    """One rule in two forms: what PostgreSQL writes into alert details is what the API writes."""
    row = session.execute(
        text(f"SELECT {money_sql(':v')} AS money, {ratio_sql(':v')} AS ratio"), {"v": value}
    )
    written = row.one()
    assert (written.money, written.ratio) == (money_text(Decimal(value)), ratio_text(Decimal(value)))


def test_money_text_has_fixed_places_and_no_exponent() -> None:
    assert money_text(Decimal("1E+3")) == "1000.00" and money_text(Decimal("68.5")) == "68.50"
    assert ratio_text(Decimal("1.3")) == "1.3000" and ratio_text(Decimal("0.83333")) == "0.8333"
    assert money_text(Decimal("-0.001")) == "0.00"


def no_float(value: Any, where: str = "") -> None:
    if isinstance(value, float):
        raise AssertionError(f"{where} is a JSON number: {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            no_float(v, f"{where}.{k}")
    if isinstance(value, list):
        for n, v in enumerate(value):
            no_float(v, f"{where}[{n}]")


def test_alert_details_and_the_webhook_payload_carry_decimal_strings(
    client: TestClient, session: Session
) -> None:
    trades(session, ("2026-02-27", "70.00", 1000))
    book = active_pledge(session)  # 1,000 units for a loan of 50,000.00; warning at 1.30, disposal at 1.10
    session.execute(text("INSERT INTO webhook (party_id, url, secret, updated_at) VALUES (:p, :u, :s, :t)"),
                    {"p": book.bank.id, "u": "https://93.184.216.34/alerts", "s": "x" * 16, "t": MONDAY})  # fmt: skip
    trades(session, ("2026-03-02", "60.00", 1000))
    revalue(session, now=MONDAY)  # the lower of VWAP 65.00 and close 60.00: 60,000.00, coverage 1.2000
    expected = {"coverage_ratio": "1.2000", "level": "warning", "price": "60.00", "price_date": "2026-03-02",
                "stale": False, "warning_ratio": "1.3000", "disposal_ratio": "1.1000"}  # fmt: skip

    bank = f.auth(f.key(session, book.bank, Role.BANK))
    alerts = client.get("/v1/alerts", headers=bank, params={"pledge_id": str(book.pledge_id)}).json()["items"]
    assert [(a["kind"], a["details"]) for a in alerts] == [("margin_warning", expected)]

    payload = session.execute(text("SELECT payload FROM webhook_delivery")).scalar_one()
    body = delivery.body_of(payload)  # the exact bytes the bank receives and verifies
    event = json.loads(body)
    no_float(event, "payload")
    assert event["event"] == "alert.raised" and event["details"] == expected
    parsed = AlertEvent.model_validate(event)  # the payload is what /openapi.json's `webhooks` says it is
    assert parsed.model_dump(mode="json", exclude={"at"}) == {k: v for k, v in event.items() if k != "at"}

    pledge = client.get(f"/v1/pledges/{book.pledge_id}", headers=bank).json()
    no_float(pledge, "pledge")
    assert pledge["valuation"]["coverage_ratio"] == "1.2000" and pledge["terms"]["haircut"] == "0.0000"
    assert pledge["loan"]["principal"] == "50000.00" and pledge["valuation"]["collateral_value"] == "60000.00"
