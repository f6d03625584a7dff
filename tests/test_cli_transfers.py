"""`registry transfers import FILE.csv`: a day's settled trades from a file, every line or none, refusals
by the file's line, its ref and its column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from registry.cli import main
from registry.db import unit_of_work
from registry.ledger.models import Account
from tests import factories as f


@pytest.fixture
def accounts(cli_db: Engine) -> list[Account]:
    """Three accounts: the first holds CCER 1..1000, the second CCER 1001..1500."""
    with unit_of_work(cli_db) as s:
        made = [f.account(s) for _ in range(3)]
        f.issue(s, made[0].id, 1000)
        f.issue(s, made[1].id, 500)
        for a in made:
            s.refresh(a)
            s.expunge(a)
    return made


def holdings(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT a.number, h.serial_start, h.serial_end, h.status FROM holding h "
            "JOIN account a ON a.id = h.account_id ORDER BY h.serial_start"
        ))]  # fmt: skip


def write(tmp_path: Path, body: str) -> str:
    path = tmp_path / "settled.csv"
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_a_file_of_trades_settles_in_order_with_its_trail(
    cli_db: Engine, accounts: list[Account], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = (x.number for x in accounts)
    file = write(tmp_path, "from_account,to_account,credit_type,quantity,serial_start,serial_end,ref\n"
                           f"{a},{b},CCER,300,,,T-1\n"
                           f"{b},{c},CCER,,1101,1200,T-2\n"  # a named block of the second account's own
                           f"{b},{c},CCER,100,,,T-3\n"  # the lowest first: units T-1 just delivered
                           f"{accounts[2].id},{a},CCER,50,,,T-4\n")  # an account by its id  # fmt: skip
    assert main(["transfers", "import", file]) == 0
    assert "4 transfers settled, 550 units moved" in capsys.readouterr().out
    assert holdings(cli_db) == [
        (a, 1, 50, "available"), (c, 51, 100, "available"), (b, 101, 300, "available"),
        (a, 301, 1000, "available"), (b, 1001, 1100, "available"), (c, 1101, 1200, "available"),
        (b, 1201, 1500, "available"),
    ]  # fmt: skip
    with cli_db.connect() as conn:
        refs = conn.execute(
            text("SELECT DISTINCT reason FROM audit_event WHERE kind = 'transfer' ORDER BY reason")
        )
        assert refs.scalars().all() == ["T-1", "T-2", "T-3", "T-4"]
    assert main(["audit", "verify"]) == 0


def test_one_line_that_cannot_apply_moves_nothing_and_every_failing_line_is_named(
    cli_db: Engine, accounts: list[Account], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = (x.number for x in accounts)
    before = holdings(cli_db)
    file = write(tmp_path, "credit_type,from_account,to_account,quantity,ref\n"
                           f"CCER,{a},{b},300,T-1\n"
                           "\n"  # a blank line is skipped, and the line numbers below stay the file's
                           f"CCER,{c},{a},1,T-2\n"  # the third account holds nothing
                           f"CCER,{a},{b},800,T-3\n"  # 700 left after T-1
                           f"CDCER,{b},{c},5,T-4\n")  # fmt: skip  # holds no CDCER
    assert main(["transfers", "import", file]) == 2
    said = capsys.readouterr().err
    assert "3 line(s) cannot apply; nothing moved" in said
    assert "line 4 (T-2)" in said and "line 5 (T-3)" in said and "line 6 (T-4)" in said
    assert "line 2 " not in said
    assert holdings(cli_db) == before


def test_a_row_of_the_wrong_shape_is_refused_by_its_line_and_column(
    cli_db: Engine, accounts: list[Account], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, _ = (x.number for x in accounts)
    before = holdings(cli_db)
    cases = {
        f"from_account,to_account,credit_type,quantity\n{a},{b},CCER,300\n{a},{b},CCER,ten\n":
            "line 3, quantity: 'ten' is not a whole number of units",
        f"from_account,to_account,credit_type,quantity\n{a},RA9999999999,CCER,1\n":
            "line 2, to_account: no account 'RA9999999999'",
        f"from_account,to_account,credit_type,quantity\n{a},{b},CCER,-1\n":
            "line 2, quantity: '-1' is not a whole number of units",
        f"from_account,to_account,credit_type,quantity,ref\n{a},{b},CCER,1,\x1b[31m\n":
            "line 2, ref: must not contain control",
        f"from_account,to_account,credit_type\n{a},{b},CCER\n":
            "the header has no column quantity (or serial_start,serial_end)",
        f"from_account,to_account,credit_type,quantity\n{a},{b},CCER,1,extra\n":
            "line 2: more values than the header has columns",
        "from_account,to_account,credit_type,quantity\n": "no trades in the file",
    }  # fmt: skip
    for body, expected in cases.items():
        assert main(["transfers", "import", write(tmp_path, body)]) == 2
        assert expected in capsys.readouterr().err, body
    assert holdings(cli_db) == before
    assert main(["transfers", "import", str(tmp_path / "absent.csv")]) == 2
    assert "cannot read the file" in capsys.readouterr().err
