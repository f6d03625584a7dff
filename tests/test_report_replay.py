"""The collateral book and the exchange's frozen units against a plain Python replay of the same trail.

The book's SQL replays the trail with window marks and one pass over the events; this replay reads the
rows and adds units up one event at a time, the way the book is defined: the pledges registered and not
yet closed at the end of the day, each one's frozen units by batch (a freeze into it on the chain of the
account the units are frozen in adds, one out of it subtracts), the latest valuation before that moment.
The story gives it what a simple book lacks (Beijing time, March 2026):
- 3rd, bank A's X: 500 + 300 units of two forestry-2023 batches (one line, two batches) and 200
  hydropower-2024, haircut 10%; 4th, bank A's Y: 400 forestry-2023 of a third batch + 100 solar-2022;
  5th, bank B's Z: 250 hydropower-2024.
- each confirmation values its pledge; 4th, 8th and 11th evenings: the daily revaluation, the last after
  the price fell (X, Y and W at or below their lines).
- 6th, X topped up with 100 more units of its first batch; 7th, X releases the second batch and 50 of
  the first (outstanding down to 30,000); 8th, bank A disposes of Y's solar units; 9th, Z is released.
- 10th, bank A's W freezes the units X released (the same serials, frozen again under another pledge);
  12th, bank A disposes of the rest of Y: closed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlmodel import Session

from registry.ledger import service as ledger
from registry.ledger.models import Party, PartyKind
from registry.ledger.service import Selection, SerialRange
from registry.pledge import service as pledges
from registry.pledge.states import InstructionType
from registry.principal import Actor, Principal, Role
from registry.report.collateral_book import (
    CENT,
    COVERAGE_BANDS,
    LADDER,
    RATIO,
    Band,
    CollateralBook,
    Line,
    Rung,
    collateral_book,
    end_of_day,
)
from registry.report.exchange_stats import exchange_stats
from registry.valuation import prices
from registry.valuation.models import ValuationLevel
from registry.valuation.service import revalue
from tests import factories as f
from tests.test_reports import at, bank_asks

TODAY = date(2026, 3, 31)
AUDITOR = Principal(None, Role.AUDITOR)


@dataclass
class Story:
    bank_a: Party
    bank_b: Party


@pytest.fixture
def story(session: Session) -> Story:
    exchange = f.the_exchange(session)
    bank_a, bank_b = f.party(session, PartyKind.BANK, "Bank A"), f.party(session, PartyKind.BANK, "Bank B")
    p1, p2 = f.party(session, name="Pledgor One"), f.party(session, name="Pledgor Two")
    a1, a2 = f.account(session, p1), f.account(session, p2)
    f.account(session, bank_a)  # where bank A's disposals go

    def issue(account: UUID, code: str, kind: str, vintage: int) -> int:
        return ledger.issue(session, f.system(at(1)), credit_type="CCER", project_code=code, project_type=kind,
                            vintage=vintage, quantity=5_000, account_id=account).serial_start  # fmt: skip

    f1, f2, hydro = (
        issue(a1.id, "P-F1", "forestry", 2023),
        issue(a1.id, "P-F2", "forestry", 2023),
        issue(a1.id, "P-H", "hydropower", 2024),
    )
    f3, solar = issue(a2.id, "P-F3", "forestry", 2023), issue(a2.id, "P-S", "solar", 2022)

    def trades(first: date, last: date, price: str, entered: datetime) -> None:
        days = [first + timedelta(days=d) for d in range((last - first).days + 1)]
        prices.record_trades(session, f.system(entered), [prices.Trade("CCER", d, Decimal(price), 1_000)
                                                          for d in days if d.weekday() < 5])  # fmt: skip

    trades(date(2026, 2, 23), date(2026, 3, 8), "50.00", at(8, 18))
    operator = Actor(Principal(exchange.id, Role.EXCHANGE, operator="op"), at(1))
    second = Actor(Principal(exchange.id, Role.EXCHANGE, operator="op2"), at(1))

    def bank(party: Party, when: datetime) -> Actor:
        return Actor(Principal(party.id, Role.BANK), when)

    def register(lender: Party, account: Any, borrower: Party, blocks: list[tuple[int, int]], principal: str,
                 maturity: date, day: int, haircut: str = "0") -> UUID:  # fmt: skip
        made = bank_asks(session, lender, account, borrower, blocks, principal, maturity, day, haircut)
        pledges.confirm(session, operator_at(day), made.instruction.id)
        return made.pledge.id

    def operator_at(day: int, who: Actor = operator) -> Actor:
        return Actor(who.principal, at(day, 11))

    def decide(instruction: Any, day: int, *, four_eyes: bool = False) -> None:
        pledges.confirm(session, operator_at(day), instruction.id)
        if four_eyes:
            pledges.confirm(session, Actor(second.principal, at(day, 12)), instruction.id)

    def blocks(*ranges: tuple[int, int]) -> Selection:
        return Selection(blocks=[SerialRange("CCER", s, e) for s, e in ranges])

    x = register(bank_a, a1, p1, [(f1, f1 + 499), (f2, f2 + 299), (hydro, hydro + 199)], "40000.00",
                 date(2026, 5, 1), 3, haircut="0.10")  # fmt: skip
    revalue(session, now=at(4, 8))  # before Y: X valued, Y not yet
    y = register(bank_a, a2, p2, [(f3, f3 + 399), (solar, solar + 99)], "20000.00", date(2027, 3, 1), 4)
    z = register(bank_b, a1, p1, [(hydro + 200, hydro + 449)], "5000.00", date(2026, 3, 20), 5)
    revalue(session, now=at(4, 18))
    top_up = pledges.request(session, bank(bank_a, at(6)), x, kind=InstructionType.TOP_UP,
                             selection=blocks((f1 + 500, f1 + 599)))  # fmt: skip
    pledges.consent(session, f.pledgor_actor(p1.id, at(6)), top_up.id)
    decide(top_up, 6)
    release = pledges.request(session, bank(bank_a, at(7)), x, kind=InstructionType.RELEASE,
                              selection=blocks((f2, f2 + 299), (f1, f1 + 49)),
                              outstanding_principal=Decimal("30000.00"))  # fmt: skip
    decide(release, 7)
    disposal = pledges.request(session, bank(bank_a, at(8)), y, kind=InstructionType.DISPOSE,
                               selection=blocks((solar, solar + 99)), reason="default")  # fmt: skip
    decide(disposal, 8, four_eyes=True)
    revalue(session, now=at(8, 18))
    decide(pledges.request(session, bank(bank_b, at(9)), z, kind=InstructionType.RELEASE), 9)
    register(bank_a, a1, p1, [(f2, f2 + 299), (f1, f1 + 49)], "10000.00", date(2026, 12, 31), 10)
    trades(date(2026, 3, 9), date(2026, 3, 11), "36.00", at(11, 17))
    revalue(session, now=at(11, 18))
    rest = pledges.request(session, bank(bank_a, at(12)), y, kind=InstructionType.DISPOSE, reason="default")
    decide(rest, 12, four_eyes=True)
    return Story(bank_a, bank_b)


def rows(session: Session, sql: str) -> list[Any]:
    return list(session.execute(text(sql)).all())


@dataclass
class Position:
    pledge: Any
    valuation: Any | None
    units: dict[UUID, int]  # batch -> units frozen


def replay(session: Session, as_of: date, bank: UUID | None) -> dict[UUID, Position]:
    end = end_of_day(as_of)
    live = {
        p.id: p
        for p in rows(session, "SELECT * FROM pledge")
        if p.confirmed_at is not None
        and p.confirmed_at < end
        and (p.closed_at is None or p.closed_at >= end)
        and bank in (None, p.pledgee_party_id)
    }
    units: dict[UUID, dict[UUID, int]] = defaultdict(lambda: defaultdict(int))
    for e in rows(session, "SELECT * FROM audit_event ORDER BY id"):
        if e.occurred_at >= end:
            continue
        n = e.serial_end - e.serial_start + 1
        if e.to_status == "frozen" and e.account_id == e.to_account_id and e.to_pledge_id in live:
            units[e.to_pledge_id][e.batch_id] += n
        if e.from_status == "frozen" and e.account_id == e.from_account_id and e.from_pledge_id in live:
            units[e.from_pledge_id][e.batch_id] -= n
    latest: dict[UUID, Any] = {}
    for v in rows(session, "SELECT * FROM valuation"):
        if v.pledge_id in live and v.valued_at < end:
            before = latest.get(v.pledge_id)
            if before is None or (v.valued_at, v.id) > (before.valued_at, before.id):
                latest[v.pledge_id] = v
    return {
        pid: Position(live[pid], latest.get(pid), {b: n for b, n in held.items() if n})
        for pid, held in units.items()
        if any(held.values())
    }


@dataclass
class Figures:
    pledges: set[UUID] = field(default_factory=set)
    units: int = 0
    value: Decimal = Decimal(0)
    outstanding: Decimal = Decimal(0)
    at_warning: set[UUID] = field(default_factory=set)
    at_disposal: set[UUID] = field(default_factory=set)
    unvalued: set[UUID] = field(default_factory=set)


def expected_book(
    session: Session, as_of: date, bank: UUID
) -> tuple[list[Line], Line, list[Rung], list[Band]]:
    batches = {i.id: (i.project_type, i.vintage) for i in rows(session, "SELECT * FROM issuance")}
    codes = {c.id: c.code for c in rows(session, "SELECT * FROM credit_type")}
    lines: dict[Any, Figures] = defaultdict(Figures)  # (credit type, project type, vintage), None: the total
    rungs = {name: Figures() for name, _, _ in LADDER}
    bands: dict[str, int] = defaultdict(int)
    for pid, pos in replay(session, as_of, bank).items():
        p, v = pos.pledge, pos.valuation
        price = v.price if v is not None and v.price is not None else Decimal(0)
        principal = v.outstanding_principal if v is not None else p.principal
        pledge_units = sum(pos.units.values())
        value_all, outstanding_all = Decimal(0), Decimal(0)
        days = (p.maturity_date - as_of).days
        rung = next(n for n, lo, hi in LADDER if (lo is None or days >= lo) and (hi is None or days <= hi))
        for batch, n in pos.units.items():
            value, outstanding = n * price * (1 - p.haircut), principal * n / pledge_units
            value_all, outstanding_all = value_all + value, outstanding_all + outstanding
            for figures in (lines[(codes[p.credit_type_id], *batches[batch])], lines[None], rungs[rung]):
                figures.pledges.add(pid)
                figures.units += n
                figures.value += value
                figures.outstanding += outstanding
                if v is not None and v.level == ValuationLevel.WARNING:
                    figures.at_warning.add(pid)
                if v is not None and v.level == ValuationLevel.DISPOSAL:
                    figures.at_disposal.add(pid)
                if v is None or v.price is None:
                    figures.unvalued.add(pid)
        if v is None or v.price is None:
            bands["unvalued"] += 1
        else:
            ratio = value_all / outstanding_all
            bands[next((b for b, top in zip(COVERAGE_BANDS, ("1.10", "1.30", "1.50", "2.00"), strict=False)
                        if ratio < Decimal(top)), "2.00 and over")] += 1  # fmt: skip

    def line(key: Any, figures: Figures) -> Line:
        value, outstanding = figures.value.quantize(CENT), figures.outstanding.quantize(CENT)
        ratio = (value / outstanding).quantize(RATIO) if outstanding else None
        credit_type, project_type, vintage = key or (None, None, None)
        return Line(credit_type, project_type, vintage, len(figures.pledges), figures.units, value, outstanding, ratio,
                    len(figures.at_warning), len(figures.at_disposal), len(figures.unvalued))  # fmt: skip

    total = lines.pop(None, None)
    empty = Line(None, None, None, 0, 0, Decimal("0.00"), Decimal("0.00"), None, 0, 0, 0)
    return (
        [line(k, lines[k]) for k in sorted(lines)],
        line(None, total) if total else empty,
        [
            Rung(n, len(r.pledges), r.outstanding.quantize(CENT), r.value.quantize(CENT))
            for n, r in rungs.items()
        ],
        [Band(name, bands[name]) for name in COVERAGE_BANDS],
    )


def test_every_day_s_book_is_the_replay_of_its_trail(session: Session, story: Story) -> None:
    seen: set[tuple[Any, ...]] = set()
    for day in range(2, 15):
        as_of = date(2026, 3, day)
        for bank in (story.bank_a.id, story.bank_b.id):
            book: CollateralBook = collateral_book(session, AUDITOR, as_of=as_of, bank_id=bank, today=TODAY)
            lines, total, ladder, bands = expected_book(session, as_of, bank)
            assert (book.lines, book.total, book.ladder, book.coverage_bands) == (
                lines,
                total,
                ladder,
                bands,
            ), (
                as_of,
                bank,
            )
            seen.update((ln.pledges, ln.at_warning, ln.at_disposal) for ln in book.lines)
    # the story reached what it is there for: two pledges on one line, pledges at both lines
    assert {2} <= {n for n, _, _ in seen} and any(w for _, w, _ in seen) and any(d for _, _, d in seen)


def test_the_replay_ends_where_the_ledger_is(session: Session, story: Story) -> None:
    held = {
        (r.pledge_id, r.batch_id): r.units
        for r in rows(
            session,
            "SELECT pledge_id, batch_id, sum(quantity) AS units FROM holding WHERE status = 'frozen' GROUP BY 1, 2",
        )
    }
    replayed = {
        (pid, batch): n for pid, pos in replay(session, TODAY, None).items() for batch, n in pos.units.items()
    }
    assert replayed == held and len({pid for pid, _ in held}) == 2  # X and W


def test_the_exchange_s_frozen_units_are_the_replay_s(session: Session, story: Story) -> None:
    for first, last in ((2, 4), (1, 7), (5, 9), (10, 13), (1, 31)):
        stats = exchange_stats(session, AUDITOR, period_from=date(2026, 3, first), period_to=date(2026, 3, last),
                               today=TODAY)  # fmt: skip
        positions = replay(session, date(2026, 3, last), None)
        units = sum(n for pos in positions.values() for n in pos.units.values())
        assert stats.units_frozen == ({"CCER": units} if units else {})
        by_pledgor: dict[UUID, list[int]] = defaultdict(lambda: [0, 0])
        for pos in positions.values():
            by_pledgor[pos.pledge.pledgor_party_id][0] += 1
            by_pledgor[pos.pledge.pledgor_party_id][1] += sum(pos.units.values())
        names = {p.id: p.name for p in rows(session, "SELECT id, name FROM party")}
        expected = sorted(((names[k], n, u) for k, (n, u) in by_pledgor.items()), key=lambda r: (-r[2], r[0]))
        assert [(p.name, p.pledges, p.units) for p in stats.largest_pledgors] == expected
