"""The `registry` command on a database of its own: keys, demo, audit verify, check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from registry.access import service as access
from registry.cli import main
from registry.config import get_settings
from registry.db import unit_of_work


@pytest.fixture
def cli_db(committed_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", committed_engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    yield committed_engine
    get_settings.cache_clear()


def test_first_exchange_key_on_an_empty_database(cli_db: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["keys", "create", "--role", "exchange", "--party-name", "The Exchange", "--operator", "ops-1"])
        == 0
    )
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("rk_")
    with unit_of_work(cli_db) as s:
        principal = access.authenticate(s, key)
        stored = s.execute(text("SELECT count(*) FROM api_key WHERE digest = :d"), {"d": access.digest(key)})
        assert stored.scalar_one() == 1  # kept as a digest only
        assert (
            s.execute(
                text("SELECT count(*) FROM api_key WHERE prefix || digest::text LIKE :k"),
                {"k": f"%{key[-20:]}%"},
            ).scalar_one()
            == 0
        )
    assert principal is not None and principal.role.value == "exchange" and principal.operator == "ops-1"


def test_a_bank_key_cannot_belong_to_an_enterprise(cli_db: Engine) -> None:
    assert main(["keys", "create", "--role", "holder", "--party-name", "Some Co"]) == 0
    assert main(["keys", "create", "--role", "bank", "--party-name", "Some Co"]) == 2


def test_demo_loads_once_and_checks_clean(cli_db: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    first = capsys.readouterr().out
    assert "demo data loaded" in first and first.count("rk_") == 7
    assert main(["demo"]) == 0
    assert "already there" in capsys.readouterr().out
    with cli_db.connect() as conn:
        parties = conn.execute(text("SELECT kind, count(*) FROM party GROUP BY kind")).all()
        assert dict(parties) == {"exchange": 1, "bank": 2, "enterprise": 3, "auditor": 1}
        types = (
            conn.execute(
                text(
                    "SELECT DISTINCT ct.code FROM issuance i JOIN credit_type ct "
                    "ON ct.id = i.credit_type_id ORDER BY 1"
                )
            )
            .scalars()
            .all()
        )
        assert types == ["CCER", "CDCER"]
        statuses = conn.execute(text("SELECT status FROM pledge ORDER BY status")).scalars().all()
        assert statuses == ["active", "pending", "pending"]
        waiting = conn.execute(text("SELECT status FROM instruction WHERE status IN ('pending', 'awaiting_consent') "
                                    "ORDER BY status")).scalars().all()  # fmt: skip
        assert waiting == ["awaiting_consent", "pending"]  # one for its pledgor, one for the exchange
    assert main(["check"]) == 0
    assert main(["audit", "verify"]) == 0
    assert "ok" in capsys.readouterr().out


def test_audit_verify_fails_on_tampering(cli_db: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    main(["demo"])
    with cli_db.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(
            text(
                "UPDATE audit_event SET serial_end = serial_end + 1 "
                "WHERE id = (SELECT min(id) FROM audit_event)"
            )
        )
    capsys.readouterr()
    assert main(["audit", "verify"]) == 1
    assert "TAMPERED" in capsys.readouterr().out
    assert main(["check"]) == 1


def test_lapsed_requests_are_expired_by_the_job(cli_db: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    # The demo's two waiting requests (one for the exchange, one for its pledgor's consent) were made "now";
    # age them past their lapse time.
    main(["demo"])
    with cli_db.begin() as conn:
        conn.execute(
            text(
                "UPDATE instruction SET hold_expires_at = now() - interval '1 minute' "
                "WHERE status IN ('pending', 'awaiting_consent')"
            )
        )
    capsys.readouterr()
    assert main(["jobs", "expire-holds"]) == 0
    assert "2 unconfirmed request(s) lapsed" in capsys.readouterr().out
    with cli_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM holding WHERE status = 'held'")).scalar_one() == 0
        statuses = conn.execute(text("SELECT status FROM pledge WHERE status <> 'active'")).scalars().all()
        assert statuses == ["expired", "expired"]
    assert main(["check"]) == 0


def test_prices_import_loads_all_rows_or_none(
    cli_db: Engine, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "credit_type,trade_date,price,volume\nCCER,2026-02-26,64.00,1000\nCCER,2026-02-27,sixty,10\n"
    )
    assert main(["prices", "import", str(bad)]) == 2
    assert "line 3" in capsys.readouterr().err
    with cli_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM trade_price")).scalar_one() == 0
    good = tmp_path / "good.csv"
    good.write_text(
        "credit_type,trade_date,price,volume,kind\n"
        + "".join(f"CCER,2026-01-{d:02d},6{d % 10}.50,100,listed\n" for d in range(1, 29))
    )
    assert main(["prices", "import", str(good)]) == 0
    out = capsys.readouterr()
    assert "28 prints loaded" in out.out and "28/28" in out.err
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("credit_type,trade_date,price,volume\nNOPE,2026-02-26,64.00,1000\n")
    assert main(["prices", "import", str(unknown)]) == 2
    assert "unknown credit type NOPE" in capsys.readouterr().err


def test_transfers_import_applies_a_days_trades_or_names_each_failing_line(
    cli_db: Engine, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests import factories as f

    with unit_of_work(cli_db) as s:
        a, b, c = (f.account(s).id for _ in range(3))
        start = f.issue(s, a, 100).serial_start

    def held() -> dict[Any, int]:
        with cli_db.connect() as conn:
            return dict(conn.execute(text("SELECT account_id, sum(quantity) FROM holding GROUP BY 1")).all())

    header = "from_account_id,to_account_id,credit_type,quantity,serial_start,serial_end,ref\n"
    bad = tmp_path / "bad.csv"
    bad.write_text(header + f"{a},{b},CCER,10,,,T-1\n{b},{c},CCER,,{start},{start + 4},T-2\n"
                   f"{a},not-an-id,CCER,1,,,T-3\n{a},{b},CCER,999,,,T-4\n")  # fmt: skip
    assert main(["transfers", "import", str(bad)]) == 2
    assert "line 4" in capsys.readouterr().err  # a row that cannot be read: nothing is tried
    bad.write_text(header + f"{a},{b},CCER,10,,,T-1\n{b},{c},CCER,,{start},{start + 4},T-2\n"
                   f"{a},{b},CCER,999,,,T-4\n")  # fmt: skip
    assert main(["transfers", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 4 (T-4): insufficient_units [quantity]" in err and "line 2" not in err
    assert held() == {a: 100}
    good = tmp_path / "good.csv"
    good.write_text(header + f"{a},{b},CCER,10,,,T-1\n{b},{c},CCER,,{start},{start + 4},T-2\n")
    assert main(["transfers", "import", str(good)]) == 0
    assert "2 transfers applied, 15 units moved" in capsys.readouterr().out
    assert held() == {a: 90, b: 5, c: 5}
    assert main(["check"]) == 0
