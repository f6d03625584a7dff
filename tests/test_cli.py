"""The `registry` command on a database of its own: keys, demo, audit verify, check."""

from __future__ import annotations

import json
import shlex
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from registry.access import service as access
from registry.cli import main
from registry.db import unit_of_work


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
    assert "28 prints loaded" in out.out and "28/28" not in out.err  # no progress bar into a pipe
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("credit_type,trade_date,price,volume\nNOPE,2026-02-26,64.00,1000\n")
    assert main(["prices", "import", str(unknown)]) == 2
    assert "unknown credit type NOPE" in capsys.readouterr().err


# --- a second `scripts/start` ----------------------------------------------------------------------


def test_demo_run_again_keeps_its_keys_and_passwords(
    cli_db: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    capsys.readouterr()
    kept = ("SELECT (SELECT count(*) FROM api_key), "
            "(SELECT string_agg(password_hash, ',' ORDER BY username) FROM console_user)")  # fmt: skip
    with cli_db.connect() as conn:
        before = conn.execute(text(kept)).one()
    assert main(["demo"]) == 0
    again = capsys.readouterr().out
    with cli_db.connect() as conn:
        assert conn.execute(text(kept)).one() == before  # no key minted, no password reset
    assert "already there" in again and "rk_" not in again
    for username in ("demo-operator-1", "shudu-bank", "lvxing", "auditor"):
        assert username in again
    assert "users password USERNAME" in again
    wanted = next(line for line in again.splitlines() if "keys create --role bank" in line and "蜀都" in line)
    assert main(shlex.split(wanted)[1:]) == 0  # the command it prints makes a key, exactly as printed
    assert capsys.readouterr().out.strip().startswith("rk_")
    with cli_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM api_key")).scalar_one() == before[0] + 1


# --- refusals in words ------------------------------------------------------------------------------

HEADER = "credit_type,trade_date,price,volume,kind\n"


@pytest.mark.parametrize(
    ("rows", "said"),
    [
        ("CCER,2026-02-26,64.00,1000,listed\nCCER,2026-02-27,sixty,10,listed\n",
         "line 3, price: 'sixty' is not a price (a positive number with at most two decimals, like 64.50)"),
        ("CCER,2026-02-27,64.00,,listed\n", "line 2, volume: empty"),
        ("CCER,2026-02-27,64.00,1.5,listed\n", "line 2, volume: '1.5' is not a volume"),
        ("CCER,2026-02-30,64.00,10,listed\n", "line 2, trade_date: '2026-02-30' is not a day (YYYY-MM-DD)"),
        (",2026-02-27,64.00,10,listed\n", "line 2, credit_type: empty"),
        ("CCER,2026-02-27,64.005,10,listed\n", "line 2, price: '64.005' is not a price"),
        ("CCER,2026-02-27,64.00,10,auction\n", "line 2, kind: 'auction' is not a kind (listed or block)"),
        ("CCER,2026-02-26,64.00,10,listed\nNOPE,2026-02-26,64.00,10,listed\n",
         "line 3, credit_type: unknown credit type NOPE"),
        ("CCER,2999-01-04,64.00,10,listed\n", "line 2, trade_date: a day up to today"),
        ("CCER,2026-02-26,64.00,10,listed\nCCER,2026-02-26,65.00,10,listed\n",
         "line 3: a second listed print for CCER on 2026-02-26 (the first is on line 2)"),
    ],
)  # fmt: skip
def test_prices_import_names_the_line_and_the_field(
    cli_db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str, said: str
) -> None:
    prints = tmp_path / "prints.csv"
    prints.write_text(HEADER + rows)
    assert main(["prices", "import", str(prints)]) == 2
    err = capsys.readouterr().err
    assert said in err and err.strip().endswith("nothing loaded"), err
    assert "Traceback" not in err and "<class" not in err and "invalid literal" not in err
    with cli_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM trade_price")).scalar_one() == 0


def test_prices_import_names_the_line_in_a_later_chunk(
    cli_db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.cli import prices

    monkeypatch.setattr(prices, "CHUNK", 2)  # line 5 is the first row of the second statement
    rows = "".join(f"CCER,2026-02-{d:02d},64.00,10,listed\n" for d in (23, 24, 25))
    (tmp_path / "p.csv").write_text(HEADER + rows + "NOPE,2026-02-26,64.00,10,listed\n")
    assert main(["prices", "import", str(tmp_path / "p.csv")]) == 2
    assert "line 5, credit_type: unknown credit type NOPE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "said"),
    [(b"credit_type,trade_date,price\nCCER,2026-02-26,64.00\n", "line 1: the header has no column volume"),
     (b"credit_type,trade_date,price,volume\nCCER,2026-02-26,64.00,\xff\xfe\n", "not UTF-8 text"),
     (None, "cannot read the file: No such file or directory")],
)  # fmt: skip
def test_prices_import_refuses_a_file_in_words(
    cli_db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, said: str
) -> None:
    prints = tmp_path / "prints.csv"
    if content is not None:
        prints.write_bytes(content)
    assert main(["prices", "import", str(prints)]) == 2
    assert said in capsys.readouterr().err


def test_prices_import_shows_a_progress_bar_on_a_terminal(cli_db: Engine, tmp_path: Path) -> None:
    """On a terminal: a bar with count, rate and time left (in a pipe, nothing: see above)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    prints = tmp_path / "prints.csv"
    prints.write_text(HEADER + "".join(f"CCER,2026-01-{d:02d},60.50,100,listed\n" for d in range(1, 29)))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    env = {**os.environ, "DATABASE_URL": cli_db.url.render_as_string(hide_password=False), "TERM": "xterm"}
    env.pop("REGISTRY_LOG_FORMAT", None)
    process = subprocess.Popen([sys.executable, "-m", "registry.cli", "prices", "import", str(prints)],
                               stdout=slave, stderr=slave, env=env)  # fmt: skip
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed: the command ended
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(timeout=60) == 0
    os.close(master)
    screen = seen.decode(errors="replace")
    assert "28/28" in screen and "rows/s" in screen and "eta" in screen, screen
    assert "28 prints loaded" in screen


# --- reports ------------------------------------------------------------------------------------------


def _today() -> str:
    from registry.calendar import exchange_day
    from registry.clock import SystemClock

    return exchange_day(SystemClock().now()).isoformat()


def test_a_bank_is_named_by_its_name_or_refused_in_words(
    cli_db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["demo"])
    capsys.readouterr()
    out = tmp_path / "book.json"
    day = _today()
    assert (
        main(["report", "collateral-book", "--bank-id", "蜀都银行成都分行", "--as-of", day, "-o", str(out)])
        == 0
    )
    assert json.loads(out.read_text())["bank"] == "蜀都银行成都分行 Shudu Bank Chengdu Branch"
    for given, said in (("银行", "names 2 banks"), ("招商银行", "no bank is called '招商银行'; the banks are: 蜀都"),
                        (str(uuid.uuid4()), "no bank has the id")):  # fmt: skip
        assert main(["report", "collateral-book", "--bank-id", given, "--as-of", day]) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err, err
    with pytest.raises(SystemExit) as bad_day:  # argparse's usage error: exit 2, the reason in words
        main(["report", "collateral-book", "--bank-id", "蜀都银行成都分行", "--as-of", "2026-13-01"])
    assert bad_day.value.code == 2 and "'2026-13-01' is not a day (YYYY-MM-DD)" in capsys.readouterr().err
    assert main(["report", "collateral-book", "--bank-id", "蜀都银行成都分行", "--as-of", "2999-01-01"]) == 2
    assert "as_of: a day up to today" in capsys.readouterr().err


def test_the_cli_writes_the_same_bytes_as_the_api(
    cli_db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from registry.clock import SystemClock
    from registry.config import Settings

    assert main(["demo"]) == 0
    keys = capsys.readouterr().out.splitlines()
    key = next(keys[n + 1].strip() for n, line in enumerate(keys) if "(demo-operator-1)" in line)
    settings = Settings(database_url="postgresql://unused/unused", key_cache_seconds=0, scheduler_enabled=False,
                        certificate_workers=0, report_workers=0)  # fmt: skip
    day = _today()
    start = (date.fromisoformat(day) - timedelta(days=70)).isoformat()
    with TestClient(create_app(settings, engine=cli_db, clock=SystemClock())) as client:
        bank = client.get("/v1/parties", headers={"Authorization": f"Bearer {key}"}).json()["items"]
        bank_id = next(p["id"] for p in bank if p["name"].startswith("蜀都"))
        for fmt in ("json", "csv", "pdf"):
            for path, params, argv in (
                ("/v1/reports/collateral-book", {"as_of": day, "bank_id": bank_id},
                 ["collateral-book", "--bank-id", bank_id, "--as-of", day]),
                ("/v1/reports/exchange", {"from": start, "to": day}, ["exchange", "--from", start, "--to", day]),
            ):  # fmt: skip
                api = client.get(
                    path, params={**params, "format": fmt}, headers={"Authorization": f"Bearer {key}"}
                )
                assert api.status_code == 200, api.text
                written = tmp_path / f"{argv[0]}.{fmt}"
                assert main(["report", *argv, "--format", fmt, "-o", str(written)]) == 0
                assert written.read_bytes() == api.content, (path, fmt)
    assert b"%PDF" in written.read_bytes()[:8]
