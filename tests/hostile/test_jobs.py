"""Jobs that one row cannot stop: revaluation, maturity alerts and the certificate sweep each get through
every other pledge when one pledge's data is extreme, or when the database refuses one row."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session

from registry.alert.service import refresh_maturity
from registry.certificate import service as certificates
from registry.certificate.jobs import sweep_job
from registry.certificate.render import render_pdf
from registry.clock import FixedClock
from registry.db import unit_of_work
from registry.ledger import service as ledger
from registry.ledger.models import PartyKind
from registry.ledger.service import Selection
from registry.pledge import service as pledges
from registry.principal import Role
from registry.valuation import prices
from registry.valuation.models import ValuationMethod
from registry.valuation.service import revalue
from tests import factories as f
from tests.test_valuation import MONDAY, active_pledge, trades

BASE_URL = "https://registry.example.cn"


def make_extreme(session: Session, pledge_id: UUID, principal: str = "0.01") -> None:
    """A loan the door now refuses, as a row from before the bounds: 20,000 t securing one cent."""
    session.execute(
        text("UPDATE pledge SET principal = :p, outstanding_principal = :p WHERE id = :id"),
        {"p": Decimal(principal), "id": pledge_id},
    )


def latest(session: Session, pledge_id: UUID) -> Any:
    return session.execute(
        text("SELECT collateral_value, coverage_ratio, pledge_rate, level, error FROM valuation "
             "WHERE pledge_id = :p ORDER BY id DESC LIMIT 1"), {"p": pledge_id},
    ).one()  # fmt: skip


def refuse_valuations_of(session: Session, pledge_id: UUID, table: str = "valuation") -> None:
    """The database refuses any row of `table` for this pledge, as it would a value it cannot store
    (a trigger in the test's own transaction: rolled back with it)."""
    session.execute(text(f"""
        CREATE FUNCTION pg_temp.refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.pledge_id = '{pledge_id}'::uuid AND {'NEW.error IS NULL' if table == 'valuation' else 'true'} THEN
                RAISE EXCEPTION 'numeric field overflow' USING ERRCODE = 'numeric_value_out_of_range';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_one BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse_one();
    """))  # fmt: skip


class TestAnExtremePledge:
    def test_a_coverage_of_a_hundred_million_is_stored_and_prices_still_post(
        self, client: TestClient, session: Session
    ) -> None:
        trades(session, ("2026-02-27", "70.00", 1000))
        normal = active_pledge(session)  # 1,000 t for 50,000 CNY
        extreme = active_pledge(session, units=20_000)
        make_extreme(session, extreme.pledge_id)
        exchange = f.auth(f.key(session, f.party(session, PartyKind.EXCHANGE), Role.EXCHANGE))
        posted = client.post("/v1/prices/trades", headers=exchange, json=[
            {"credit_type": "CCER", "trade_date": "2026-03-02", "price": "80.00", "volume": 1000}])  # fmt: skip
        assert posted.status_code == 201, posted.text
        assert posted.json()["revalued"] == 2
        # lower of VWAP 75.00 and close 80.00: 20,000 t × 75 = 1,500,000 CNY against 0.01 CNY
        row = latest(session, extreme.pledge_id)
        assert row.collateral_value == Decimal("1500000.00")
        assert row.coverage_ratio == Decimal("150000000.0000") and row.level == "ok" and row.error is None
        assert latest(session, normal.pledge_id).coverage_ratio == Decimal("1.5000")
        bank = f.auth(f.key(session, extreme.bank, Role.BANK))
        shown = client.get(f"/v1/pledges/{extreme.pledge_id}", headers=bank).json()["valuation"]
        assert shown["coverage_ratio"] == "150000000.0000" and shown["error"] is None
        # and the next posts keep working
        again = client.post("/v1/prices/trades", headers=exchange, json=[
            {"credit_type": "CCER", "trade_date": "2026-02-26", "price": "90.00", "volume": 1000}])  # fmt: skip
        assert again.status_code == 201

    def test_the_largest_values_the_inputs_allow_fit(self, session: Session) -> None:
        """10^12 units (the largest issuance) at the highest price a print may carry (10^9 CNY), securing
        one cent: every figure is stored, none is an error."""
        ledger.create_credit_type(session, f.system(), code="BIGX", name="Largest", unit="t")
        bank, account = f.party(session, PartyKind.BANK), f.account(session)
        f.issue(session, account.id, 10**12, credit_type="BIGX")
        prices.record_trades(session, f.system(MONDAY), [
            prices.Trade("BIGX", date(2026, 2, 27), Decimal("1000000000.00"), 1)])  # fmt: skip
        made = pledges.register(
            session, f.bank_actor(bank), pledgor_account_id=account.id, borrower_party_id=account.party_id,
            loan=pledges.Loan("JK-BIG", Decimal("1000000.00"), date(2026, 3, 2), date(2027, 3, 1)),
            collateral=Selection(credit_type="BIGX", quantity=10**12),
            terms=pledges.Terms(Decimal("0.9"), Decimal("1.30"), Decimal("1.10"), ValuationMethod.LAST_CLOSE),
        )  # fmt: skip
        f.consent(session, made)
        pledges.confirm(session, f.exchange_actor(session), made.instruction.id)
        make_extreme(session, made.pledge.id)
        valued = revalue(session, now=MONDAY)
        assert (valued.valued, valued.unvalued) == (1, 0)
        row = latest(session, made.pledge.id)
        assert row.collateral_value == Decimal("1e21") and row.coverage_ratio == Decimal("1e23")
        assert row.error is None

    def test_prices_import_values_it_too(
        self, committed_engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:  # fmt: skip
        from registry.cli import main
        from registry.config import get_settings

        with unit_of_work(committed_engine) as session:
            trades(session, ("2026-02-27", "70.00", 1000))
            active_pledge(session)
            extreme = active_pledge(session, units=20_000)
            make_extreme(session, extreme.pledge_id)
        today = datetime.now(UTC).date()
        prints = tmp_path / "prints.csv"
        prints.write_text(
            f"credit_type,trade_date,price,volume\nCCER,{today - timedelta(days=1)},95.00,1000\n"
        )
        monkeypatch.setenv("DATABASE_URL", committed_engine.url.render_as_string(hide_password=False))
        get_settings.cache_clear()
        try:
            assert main(["prices", "import", str(prints)]) == 0
        finally:
            get_settings.cache_clear()
        assert "2 active pledges revalued" in capsys.readouterr().out
        with unit_of_work(committed_engine) as session:
            assert latest(session, extreme.pledge_id).coverage_ratio > Decimal("100000000")


class TestOneRowTheDatabaseRefuses:
    def test_every_other_pledge_is_valued_and_that_one_is_marked(
        self, client: TestClient, session: Session
    ) -> None:
        trades(session, ("2026-02-27", "70.00", 1000))
        books = [active_pledge(session) for _ in range(5)]
        bad = books[3]
        refuse_valuations_of(session, bad.pledge_id)
        trades(session, ("2026-03-02", "66.00", 1000))
        valued = revalue(session, now=MONDAY)  # the daily job's pass
        assert (valued.valued, valued.unvalued) == (4, 1)
        for book in books:
            row = latest(session, book.pledge_id)
            if book is bad:
                assert (row.coverage_ratio, row.level, row.error) == (None, None, "out_of_range")
            else:
                assert (row.coverage_ratio, row.level, row.error) == (Decimal("1.3200"), "ok", None)
        # the bank sees that this pledge could not be valued, not a stale figure
        bank = f.auth(f.key(session, bad.bank, Role.BANK))
        history = client.get(f"/v1/pledges/{bad.pledge_id}/valuations", headers=bank).json()["items"]
        assert history[0]["error"] == "out_of_range" and history[0]["collateral_value"] is None
        # a margin crossing of the others is still raised
        trades(session, ("2026-03-02", "60.00", 1000))
        assert revalue(session, now=MONDAY).raised == 4

    def test_maturity_alerts_are_raised_for_every_other_pledge(self, session: Session) -> None:
        trades(session, ("2026-02-27", "70.00", 1000))
        books = [active_pledge(session, maturity=date(2026, 3, 20)) for _ in range(3)]
        refuse_valuations_of(session, books[0].pledge_id, table="alert")
        raised, _ = refresh_maturity(session, now=MONDAY + timedelta(days=14))  # 7 days before maturity
        assert raised == 2
        kinds = dict(session.execute(text(
            "SELECT pledge_id, array_agg(trigger ORDER BY trigger) FROM alert "
            "WHERE kind = 'maturity_upcoming' GROUP BY pledge_id")).all())  # fmt: skip
        assert books[0].pledge_id not in kinds
        assert [kinds[b.pledge_id] for b in books[1:]] == [["7"]] * 2, kinds


def _unrenderable_certificate(session: Session, like: str) -> None:
    """A certificate whose facts break the template (from a bug, or a restore gone wrong), issued first."""
    session.execute(text("""
        INSERT INTO certificate (id, number, pledge_id, version, status, instruction_id, issued_at,
                                 status_changed_at, credit_type_id, quantity, verification_code, content)
        SELECT gen_random_uuid(), number || '-X', pledge_id, 99, 'superseded', instruction_id,
               issued_at - interval '1 day', issued_at, credit_type_id, quantity, verification_code, '{}'
          FROM certificate WHERE number = :n"""), {"n": like})  # fmt: skip


def test_the_sweep_renders_the_others_when_one_certificate_cannot_be_rendered(
    committed_engine: Engine,
) -> None:
    with unit_of_work(committed_engine) as session:
        trades(session, ("2026-02-27", "70.00", 1000))
        pledge_ids = [active_pledge(session).pledge_id for _ in range(2)]
        numbers = list(session.execute(text("SELECT number FROM certificate ORDER BY number")).scalars())
        _unrenderable_certificate(session, numbers[0])
    clock = FixedClock(MONDAY + timedelta(hours=1))
    sweep = sweep_job(committed_engine, lambda c: render_pdf(c, BASE_URL), clock.now,
                                   grace=timedelta(minutes=2))  # fmt: skip
    assert sweep() == 2  # the broken one first (issued first), failing; both others rendered
    with unit_of_work(committed_engine) as session:
        rendered = session.execute(text(
            "SELECT number, pdf IS NOT NULL AS done FROM certificate WHERE pledge_id = ANY(:p) ORDER BY number"),
            {"p": pledge_ids}).all()  # fmt: skip
        assert [(r.number, r.done) for r in rendered] == [
            (numbers[0], True), (numbers[0] + "-X", False), (numbers[1], True)]  # fmt: skip
        failures = session.execute(text("SELECT failures, last_error FROM certificate_rendering")).one()
        assert (failures.failures, failures.last_error) == (1, "KeyError")
    for _ in range(certificates.GIVE_UP_AFTER + 2):
        sweep()
    with unit_of_work(committed_engine) as session:
        tried = session.execute(text("SELECT failures FROM certificate_rendering")).scalar_one()
        assert tried == certificates.GIVE_UP_AFTER  # then the sweep leaves it to a person
