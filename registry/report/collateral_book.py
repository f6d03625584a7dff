"""A bank's collateral book as of the end of any day, computed from the history.

Which pledges were registered and not yet closed, how many units each had frozen (a replay of its freeze,
unfreeze and disposal events up to that moment, by batch, so by project type and vintage), and the
latest valuation made before it (price, outstanding principal, level). Everything is set-based SQL over
indexed columns; Python only shapes the rows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlmodel import Session

from registry import authz
from registry.calendar import EXCHANGE_TZ, check_day
from registry.errors import InvalidInput, NotFound
from registry.ledger import repository as ledger_repo
from registry.ledger.models import BlockStatus, PartyKind
from registry.principal import Principal, Role
from registry.valuation.models import ValuationLevel

CENT, RATIO = Decimal("0.01"), Decimal("0.0001")
LADDER = (("overdue", None, -1), ("0-30", 0, 30), ("31-90", 31, 90), ("91-180", 91, 180),
          ("181-365", 181, 365), ("over 365", 366, None))  # fmt: skip


def end_of_day(day: date) -> datetime:
    """The first instant after `day` in Beijing time: what "as of that day" includes."""
    return datetime.combine(day + timedelta(days=1), time(0), EXCHANGE_TZ)


# Pledges registered and still open at :end (live) and their frozen units per batch replayed from the
# trail (held; each movement counted once: on the chain of the account the units were frozen in).
# Parameters: :end, :bank (NULL: every bank).
REPLAY = f"""
    WITH live AS (
        SELECT p.id, p.pledgor_party_id, p.credit_type_id, p.haircut, p.principal, p.maturity_date
          FROM pledge p
         WHERE p.confirmed_at < :end AND (p.closed_at IS NULL OR p.closed_at >= :end)
           AND (CAST(:bank AS uuid) IS NULL OR p.pledgee_party_id = :bank)
    ), moves AS (  -- one pass over the trail: each event into the pledge it froze units in, out of the one it
                   -- unfroze them from (NULL where that side is no freeze on the chain of its account)
        SELECT unnest(ARRAY[CASE WHEN e.to_status = '{BlockStatus.FROZEN}' AND e.account_id = e.to_account_id
                                 THEN e.to_pledge_id END,
                            CASE WHEN e.from_status = '{BlockStatus.FROZEN}' AND e.account_id = e.from_account_id
                                 THEN e.from_pledge_id END]) AS pledge_id,
               e.batch_id, unnest(ARRAY[1, -1]) * (e.serial_end - e.serial_start + 1) AS units
          FROM audit_event e
         WHERE (e.to_status = '{BlockStatus.FROZEN}' OR e.from_status = '{BlockStatus.FROZEN}')
           AND e.occurred_at < :end
    ), held AS (
        -- Sorted by pledge and line from the grouping, so that one window over it, at no further sort, tells
        -- each row its pledge's units and number of batches, and whether it is the first row of its pledge
        -- and of its line: the aggregates then count pledges with count(*), which hashes, instead of
        -- count(DISTINCT), which sorts the whole book again.
        SELECT g.*, sum(units) OVER w AS pledge_units, count(*) OVER w AS pledge_batches,
               row_number() OVER w = 1 AS first,
               row_number() OVER w = 1 OR (lag(project_type) OVER w, lag(vintage) OVER w)
                   IS DISTINCT FROM (project_type, vintage) AS first_in_line
          FROM (SELECT m.pledge_id, i.project_type, i.vintage, m.batch_id, CAST(sum(m.units) AS bigint) AS units
                  FROM moves m JOIN live l ON l.id = m.pledge_id JOIN issuance i ON i.id = m.batch_id
                 WHERE m.pledge_id IS NOT NULL  -- not implied before the join: it spares sorting the NULLs
                 GROUP BY 1, 2, 3, 4 HAVING sum(m.units) <> 0) g
        WINDOW w AS (PARTITION BY pledge_id ORDER BY project_type, vintage, batch_id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    )
"""

# The replay with the latest valuation made before :end.
POSITIONS = f"""
    {REPLAY}, valued AS (
        SELECT DISTINCT ON (v.pledge_id) v.pledge_id, v.price, v.outstanding_principal, v.level
          FROM valuation v JOIN live l ON l.id = v.pledge_id
         WHERE v.valued_at < :end
         ORDER BY v.pledge_id, v.valued_at DESC, v.id DESC
    )
    SELECT l.id AS pledge_id, l.maturity_date, ct.code AS credit_type, h.project_type, h.vintage, h.units,
           h.units * coalesce(v.price, 0) * (1 - l.haircut) AS value,
           coalesce(v.outstanding_principal, l.principal) * h.units / h.pledge_units AS outstanding,
           v.level, v.price IS NULL AS unvalued, h.pledge_batches, h.first, h.first_in_line
      FROM live l
      JOIN held h ON h.pledge_id = l.id
      JOIN credit_type ct ON ct.id = l.credit_type_id
      LEFT JOIN valued v ON v.pledge_id = l.id
"""
COVERAGE_BANDS = ("under 1.10", "1.10-1.30", "1.30-1.50", "1.50-2.00", "2.00 and over", "unvalued")


def count_pledges(where: str = "TRUE") -> str:
    """How many pledges of a group of GROUPS meet `where`: on a line, those with a row first in it; on the
    total line, those with a first row."""
    return (
        f"CASE WHEN GROUPING(credit_type) = 1 THEN count(*) FILTER (WHERE first AND {where})"
        f" ELSE count(*) FILTER (WHERE first_in_line AND {where}) END"
    )


GROUPS = f"""
    SELECT credit_type, project_type, vintage, GROUPING(credit_type) = 1 AS total,
           {count_pledges()} AS pledges, sum(units) AS units, sum(value) AS value, sum(outstanding) AS outstanding,
           {count_pledges(f"level = '{ValuationLevel.WARNING}'")} AS at_warning,
           {count_pledges(f"level = '{ValuationLevel.DISPOSAL}'")} AS at_disposal,
           {count_pledges("unvalued")} AS unvalued
      FROM report_positions
     GROUP BY GROUPING SETS ((credit_type, project_type, vintage), ())
     ORDER BY total, credit_type, project_type, vintage
"""

# The maturity ladder and the coverage bands: pledges and money by days to maturity, pledges by band. A
# pledge of one batch is one row as it stands; only those of several are summed up first.
LADDER_AND_BANDS = """
    WITH per_pledge AS (
        SELECT maturity_date, unvalued, value, outstanding FROM report_positions WHERE pledge_batches = 1
        UNION ALL
        SELECT maturity_date, bool_or(unvalued), sum(value), sum(outstanding)
          FROM report_positions WHERE pledge_batches > 1 GROUP BY pledge_id, maturity_date
    ), banded AS (
        SELECT maturity_date - CAST(:as_of AS date) AS days, outstanding, value,
               CASE WHEN unvalued THEN 'unvalued'
                    WHEN value < 1.10 * outstanding THEN 'under 1.10'
                    WHEN value < 1.30 * outstanding THEN '1.10-1.30'
                    WHEN value < 1.50 * outstanding THEN '1.30-1.50'
                    WHEN value < 2.00 * outstanding THEN '1.50-2.00'
                    ELSE '2.00 and over' END AS band
          FROM per_pledge
    )
    SELECT GROUPING(band) = 1 AS by_days, days, band, count(*) AS pledges,
           sum(outstanding) AS outstanding, sum(value) AS value
      FROM banded GROUP BY GROUPING SETS ((days), (band))
"""


def load_positions(
    session: Session, params: dict[str, Any], positions: str = POSITIONS, *, explain: bool = False
) -> list[str]:
    """Replay the book once into a temporary table (dropped at commit) that every aggregate then reads:
    `positions`, a query over REPLAY's tables. `explain`: under EXPLAIN (ANALYZE, BUFFERS), whose plan it
    returns (bench/report_bench.py --explain).

    Reports read whole books: PostgreSQL cannot estimate how many events a condition between two columns
    keeps (`account_id = to_account_id`), guesses a handful, and would nest loops over a million pledges;
    hash joins are right at every size here (for the rest of this read-only transaction). The replay's
    hashes and sorts hold a whole book: in memory, not in batches on disk."""
    session.execute(text("SET LOCAL enable_nestloop = off"))
    session.execute(text("SET LOCAL work_mem = '256MB'"))
    session.execute(text("DROP TABLE IF EXISTS report_positions"))
    create = f"CREATE TEMP TABLE report_positions ON COMMIT DROP AS {positions}"
    if explain:
        return list(session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {create}"), params).scalars())
    session.execute(text(create), params)
    return []


@dataclass(frozen=True, slots=True)
class Line:
    credit_type: str | None  # None on the total line
    project_type: str | None
    vintage: int | None
    pledges: int
    units: int
    collateral_value: Decimal
    outstanding_principal: Decimal
    coverage_ratio: (
        Decimal | None
    )  # collateral value / outstanding principal: the principal-weighted coverage
    at_warning: int
    at_disposal: int
    unvalued: int


@dataclass(frozen=True, slots=True)
class Rung:
    bucket: str  # days from the as-of date to maturity
    pledges: int
    outstanding_principal: Decimal
    collateral_value: Decimal


@dataclass(frozen=True, slots=True)
class Band:
    band: str  # the pledge's coverage ratio (collateral value / outstanding principal)
    pledges: int


@dataclass(frozen=True, slots=True)
class CollateralBook:
    bank_id: UUID
    bank: str
    as_of: date
    lines: list[Line]
    total: Line
    ladder: list[Rung]
    coverage_bands: list[Band]


def _money(value: Any) -> Decimal:
    return Decimal(value or 0).quantize(CENT)


def _line(row: Any) -> Line:
    value, outstanding = _money(row.value), _money(row.outstanding)
    return Line(
        None if row.total else row.credit_type,
        None if row.total else row.project_type,
        None if row.total else row.vintage,
        row.pledges,
        int(row.units or 0),
        value,
        outstanding,
        (value / outstanding).quantize(RATIO) if outstanding else None,
        row.at_warning,
        row.at_disposal,
        row.unvalued,
    )


def collateral_book(
    session: Session, principal: Principal, *, as_of: date, bank_id: UUID | None, today: date
) -> CollateralBook:
    """A bank asks for its own book; the exchange and auditors for any bank's (bank_id). `today`: the
    Beijing day by the caller's clock (registry.calendar): a book as of a later day does not exist yet."""
    authz.require_role(principal, Role.BANK, Role.EXCHANGE, Role.AUDITOR)
    check_day(as_of, "as_of", today=today)
    if principal.role is Role.BANK:
        if bank_id is not None and bank_id != principal.party_id:
            raise NotFound("bank", bank_id, field="bank_id")  # another bank's book does not exist for it
        bank_id = principal.party_id
    if bank_id is None:
        raise InvalidInput("bank_id", "say whose book: the bank's party id")
    bank = ledger_repo.get_party(session, bank_id)
    if bank is None or bank.kind != PartyKind.BANK:
        raise NotFound("bank", bank_id, field="bank_id")
    params = {"end": end_of_day(as_of), "bank": bank_id, "as_of": as_of}
    load_positions(session, params)
    rows = session.execute(text(GROUPS), params).all()
    lines = [_line(r) for r in rows if not r.total]
    totals = [_line(r) for r in rows if r.total]
    empty = Line(None, None, None, 0, 0, _money(0), _money(0), None, 0, 0, 0)
    pledges = dict.fromkeys((name for name, _, _ in LADDER), 0)
    outstanding = dict.fromkeys(pledges, Decimal(0))
    value = dict.fromkeys(pledges, Decimal(0))
    counted: Counter[str] = Counter()
    for r in session.execute(text(LADDER_AND_BANDS), params):
        if not r.by_days:
            counted[r.band] = r.pledges
            continue
        name = next(
            n for n, lo, hi in LADDER if (lo is None or r.days >= lo) and (hi is None or r.days <= hi)
        )
        pledges[name] += r.pledges
        outstanding[name] += r.outstanding
        value[name] += r.value
    ladder = [Rung(n, pledges[n], _money(outstanding[n]), _money(value[n])) for n in pledges]
    bands = [Band(name, counted[name]) for name in COVERAGE_BANDS]
    return CollateralBook(bank_id, bank.name, as_of, lines, totals[0] if totals else empty, ladder, bands)
