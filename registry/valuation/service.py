"""Valuation: reference prices from trade prints, and the set-based revaluation of pledges.

Reference price of a credit type as of day D (listed trades only; block trades settle below and are
kept apart): `vwap` = Σ price·volume / Σ volume over the trades of the last N business days (N =
REGISTRY_VWAP_DAYS, 20); `last_close` = the latest print on or before D; `lower_of` = the lower of the
two, for prudence. No trade in the window: the price is **stale** — the latest close is still used,
flagged, and a `price_stale` alert raised; no print at all: no value.

value = frozen units × price × (1 − haircut); coverage_ratio = value / outstanding principal;
pledge_rate = outstanding principal / value; level = disposal below the disposal line, warning below
the warning line, else ok."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlmodel import Session

from registry import isolation
from registry.alert.models import AlertKind, AlertStatus, WebhookEvent
from registry.base import one_of
from registry.calendar import business_days_before, exchange_day
from registry.config import VWAP_DAYS
from registry.db import driver_sql, run
from registry.errors import InvalidState
from registry.ledger.models import BlockStatus
from registry.money import money, money_sql, ratio, ratio_sql
from registry.valuation.models import TradeKind, ValuationError, ValuationLevel, ValuationMethod

log = logging.getLogger(__name__)

# A pledge status, written here because pledge sits above valuation (it imports this module);
# tests/test_vocabulary.py holds it equal to PledgeStatus.ACTIVE.
ACTIVE_PLEDGE = "active"
M, L = ValuationMethod, ValuationLevel


@dataclass(frozen=True, slots=True)
class Reference:
    credit_type_id: int
    vwap: Decimal | None
    vwap_date: date | None  # the latest trade inside the window
    last_close: Decimal | None
    last_date: date | None

    @property
    def stale(self) -> bool:
        return self.vwap is None

    def price(self, method: ValuationMethod) -> tuple[Decimal | None, date | None]:
        """The price `method` values at, and its day; PRICE_SQL and PRICE_DATE_SQL are the same rule."""
        if method == M.VWAP and self.vwap is not None:
            return self.vwap, self.vwap_date
        if method == M.LOWER_OF and self.vwap is not None and self.last_close is not None:
            return (
                (self.vwap, self.vwap_date)
                if self.vwap < self.last_close
                else (self.last_close, self.last_date)
            )
        return self.last_close, self.last_date


# Reference.price in SQL, over a pledge `p` and its credit type's reference row `r` (columns as in
# _REFERENCE); tests/test_valuation.py runs both forms on the same inputs.
PRICE_SQL = f"""CASE WHEN p.valuation_method = '{M.VWAP}' AND r.vwap IS NOT NULL THEN r.vwap
                WHEN p.valuation_method = '{M.LOWER_OF}' AND r.vwap IS NOT NULL THEN least(r.vwap, r.last_close)
                ELSE r.last_close END"""
PRICE_DATE_SQL = f"""CASE WHEN p.valuation_method = '{M.VWAP}' AND r.vwap IS NOT NULL THEN r.vwap_date
                WHEN p.valuation_method = '{M.LOWER_OF}' AND r.vwap IS NOT NULL AND r.vwap < r.last_close
                     THEN r.vwap_date
                ELSE r.last_date END"""


@dataclass(frozen=True, slots=True)
class Figures:
    collateral_value: Decimal
    coverage_ratio: Decimal | None  # None when nothing is owed
    pledge_rate: Decimal | None  # None when the units are worth nothing


def figures(*, quantity: int, price: Decimal, haircut: Decimal, outstanding: Decimal) -> Figures:
    """value = units × price × (1 − haircut) to the fen; coverage = value / outstanding; pledge rate =
    outstanding / value, to four places; VALUE_SQL, COVERAGE_SQL and PLEDGE_RATE_SQL are the same rule
    (rounded half away from zero, as PostgreSQL's `round`: registry/money.py)."""
    value = money(quantity * price * (1 - haircut))
    return Figures(
        collateral_value=value,
        coverage_ratio=ratio(value / outstanding) if outstanding else None,
        pledge_rate=ratio(outstanding / value) if value else None,
    )


VALUE_SQL = "round(quantity * price * (1 - haircut), 2)"
COVERAGE_SQL = "round(value / nullif(outstanding_principal, 0), 4)"
PLEDGE_RATE_SQL = "round(outstanding_principal / nullif(value, 0), 4)"


def level(
    value: Decimal | None, outstanding: Decimal, *, warning_ratio: Decimal, disposal_ratio: Decimal
) -> ValuationLevel | None:
    """Where a collateral value stands against the lender's lines; LEVEL_SQL is the same rule."""
    if value is None:
        return None
    if outstanding == 0:
        return L.OK
    if value < outstanding * disposal_ratio:
        return L.DISPOSAL
    if value < outstanding * warning_ratio:
        return L.WARNING
    return L.OK


LEVEL_SQL = f"""CASE WHEN value IS NULL THEN NULL
                WHEN outstanding_principal = 0 THEN '{L.OK}'
                WHEN value < outstanding_principal * disposal_ratio THEN '{L.DISPOSAL}'
                WHEN value < outstanding_principal * warning_ratio THEN '{L.WARNING}'
                ELSE '{L.OK}' END"""


_REFERENCE = f"""
    SELECT ct.id AS credit_type_id, w.vwap, w.vwap_date, lc.price AS last_close, lc.trade_date AS last_date
      FROM credit_type ct
      LEFT JOIN LATERAL (
            SELECT round(sum(price * volume) / sum(volume), 2) AS vwap, max(trade_date) AS vwap_date
              FROM trade_price
             WHERE credit_type_id = ct.id AND kind = '{TradeKind.LISTED}'
               AND trade_date > :window_start AND trade_date <= :as_of
           ) w ON true
      LEFT JOIN LATERAL (
            SELECT price, trade_date FROM trade_price
             WHERE credit_type_id = ct.id AND kind = '{TradeKind.LISTED}' AND trade_date <= :as_of
             ORDER BY trade_date DESC LIMIT 1
           ) lc ON true
"""
# The reference prices of credit types as of a day (`as_of`, `window_start`) in SQLAlchemy's spelling (the
# revaluation's statement) and in psycopg's, for registry.db.run: one query.
REFERENCE_SQL = driver_sql(_REFERENCE)


def reference_params(as_of: date, window_days: int) -> dict[str, Any]:
    """The parameters of REFERENCE_SQL."""
    return {"as_of": as_of, "window_start": business_days_before(as_of, window_days)}


def reference_of(row: Any) -> Reference:
    """A Reference from a row with REFERENCE_SQL's columns."""
    return Reference(row.credit_type_id, row.vwap, row.vwap_date, row.last_close, row.last_date)


def reference(session: Session, credit_type_id: int, as_of: date, window_days: int) -> Reference:
    rows = run(
        session,
        REFERENCE_SQL + " WHERE ct.id = %(ct)s",
        {"ct": credit_type_id, **reference_params(as_of, window_days)},
    )
    return reference_of(rows[0])


@dataclass(frozen=True, slots=True)
class Revaluation:
    valued: int
    raised: int
    cleared: int
    unvalued: int = 0  # pledges that could not be valued: each has a valuation row with `error`

    def __add__(self, other: Revaluation) -> Revaluation:
        return Revaluation(self.valued + other.valued, self.raised + other.raised, self.cleared + other.cleared,
                           self.unvalued + other.unvalued)  # fmt: skip


# The alerts the revaluation raises and clears (the others are the maturity job's).
REVALUATION_ALERTS = (AlertKind.MARGIN_WARNING, AlertKind.MARGIN_DISPOSAL, AlertKind.PRICE_STALE)
A = AlertKind

# One statement: value every selected active pledge, append the valuations, move the margin and
# stale-price alerts (raise once per crossing, clear when it ends) and queue their webhooks.
_REVALUE = (
    """
WITH ref AS ("""
    + _REFERENCE
    + """),
units AS (
    SELECT h.pledge_id, sum(h.quantity) AS quantity
      FROM holding h JOIN pledge p ON p.id = h.pledge_id
     WHERE h.status = '"""
    + BlockStatus.FROZEN
    + """' AND p.status = '"""
    + ACTIVE_PLEDGE
    + """' {pledge_filter} {block_filter}
     GROUP BY h.pledge_id
),
priced AS (
    SELECT p.id, p.valuation_method, p.outstanding_principal, p.warning_ratio, p.disposal_ratio,
           coalesce(u.quantity, 0) AS quantity, r.vwap IS NULL AS stale,
           """
    + PRICE_SQL
    + """ AS price,
           """
    + PRICE_DATE_SQL
    + """ AS price_date,
           p.haircut
      FROM pledge p JOIN ref r ON r.credit_type_id = p.credit_type_id
      LEFT JOIN units u ON u.pledge_id = p.id
     WHERE p.status = '"""
    + ACTIVE_PLEDGE
    + """' {pledge_filter}
),
valued AS (
    SELECT *, """
    + VALUE_SQL
    + """ AS value FROM priced
),
new AS (
    INSERT INTO valuation (pledge_id, valued_at, as_of, method, price, price_date, stale, quantity,
                           collateral_value, outstanding_principal, coverage_ratio, pledge_rate, level)
    SELECT id, :now, :as_of, valuation_method, price, price_date, stale, quantity, value, outstanding_principal,
           """
    + COVERAGE_SQL
    + """,
           """
    + PLEDGE_RATE_SQL
    + """,
           """
    + LEVEL_SQL
    + """
      FROM valued
    RETURNING pledge_id, level, stale, coverage_ratio, price, price_date
),
wanted AS (
    SELECT n.pledge_id, k.kind
      FROM new n CROSS JOIN LATERAL (VALUES """
    + f"""('{A.MARGIN_WARNING}', n.level IN ('{L.WARNING}', '{L.DISPOSAL}')),
                                            ('{A.MARGIN_DISPOSAL}', n.level = '{L.DISPOSAL}'),
                                            ('{A.PRICE_STALE}', n.stale)) AS k(kind, wanted)"""
    + """
     WHERE k.wanted
),
cleared AS (
    UPDATE alert a SET status = '"""
    + AlertStatus.CLEARED
    + """', cleared_at = :now
      FROM new n
     WHERE a.pledge_id = n.pledge_id AND a.status = '"""
    + AlertStatus.OPEN
    + """'
       AND """
    + one_of("a.kind", REVALUATION_ALERTS)
    + """
       AND NOT EXISTS (SELECT 1 FROM wanted w WHERE w.pledge_id = a.pledge_id AND w.kind = a.kind)
    RETURNING a.id, a.pledge_id, a.pledgee_party_id, a.kind, a.trigger, a.details
),
raised AS (
    INSERT INTO alert (pledge_id, pledgee_party_id, kind, trigger, raised_at, details)
    SELECT w.pledge_id, p.pledgee_party_id, w.kind, '', :now,
           jsonb_build_object('coverage_ratio', """
    + ratio_sql("n.coverage_ratio")
    + """, 'level', n.level,
                              'price', """
    + money_sql("n.price")
    + """, 'price_date', n.price_date,
                              'stale', n.stale, 'warning_ratio', """
    + ratio_sql("p.warning_ratio")
    + """,
                              'disposal_ratio', """
    + ratio_sql("p.disposal_ratio")
    + """)
      FROM wanted w JOIN pledge p ON p.id = w.pledge_id JOIN new n ON n.pledge_id = w.pledge_id
    ON CONFLICT DO NOTHING
    RETURNING id, pledge_id, pledgee_party_id, kind, trigger, details
),
outbox AS (
    INSERT INTO webhook_delivery (alert_id, party_id, event, payload, next_attempt_at, created_at)
    SELECT e.id, e.pledgee_party_id, e.event,
           jsonb_build_object('event', e.event, 'alert_id', e.id, 'pledge_id', e.pledge_id, 'kind', e.kind,
                              'trigger', e.trigger, 'details', e.details, 'at', :now),
           :now, :now
      FROM (SELECT *, '"""
    + WebhookEvent.RAISED
    + """' AS event FROM raised
            UNION ALL SELECT *, '"""
    + WebhookEvent.CLEARED
    + """' AS event FROM cleared) e
      JOIN webhook wh ON wh.party_id = e.pledgee_party_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM new) AS valued, (SELECT count(*) FROM raised) AS raised,
       (SELECT count(*) FROM cleared) AS cleared
"""
)


def revalue(
    session: Session,
    *,
    now: datetime,
    window_days: int = VWAP_DAYS,
    pledge_ids: Sequence[UUID] | None = None,
    credit_type_ids: Sequence[int] | None = None,
    isolated: bool = True,
) -> Revaluation:
    """Value every active pledge (or those named, or those of some credit types) in one pass.

    The columns hold every value the inputs allow (migration 0009), so the pass should never fail on a
    row; if one still does, the others are valued all the same (registry/isolation.py) and that pledge
    gets a valuation without figures whose `error` says why. Not `isolated` (a confirmation valuing its
    own pledge): no savepoint, two round trips fewer; the database refusing the figures is then an
    InvalidState that fails the caller's transaction as a whole, so that nothing is confirmed without its
    valuation (a lock conflict or a lost connection stays what it is: busy, retry)."""
    as_of = exchange_day(now)
    params: dict[str, Any] = {
        "now": now,
        "as_of": as_of,
        "window_start": business_days_before(as_of, window_days),
    }
    which = _EVERY
    if pledge_ids is not None:
        which = _named("pledge_ids")
        params["pledge_ids"] = list(pledge_ids)
    elif credit_type_ids is not None:
        which = _Which("AND p.credit_type_id = ANY(:ct_ids)", "AND h.credit_type_id = ANY(:ct_ids)")
        params["ct_ids"] = list(credit_type_ids)
    pledge_filter = which.pledges

    def value(statement: _Which, extra: dict[str, Any]) -> Revaluation:
        if pledge_ids is not None:  # a few pledges, at a confirmation: the prepared path
            row = run(session, _prepared(statement), {**params, **extra})[0]
        else:
            row = session.execute(text(_statement(statement)), {**params, **extra}).one()
        return Revaluation(row.valued, row.raised, row.cleared)

    if not isolated:
        try:
            return value(which, {})
        except (DataError, IntegrityError) as refused:  # the row, not the moment: no retry would value it
            raise InvalidState(
                "the pledge cannot be valued as it stands (the database refused its figures); nothing was done"
            ) from refused
    whole = isolation.attempt(session, lambda: value(which, {}))
    if not isinstance(whole, DBAPIError):
        return whole
    log.warning("revaluation in one pass refused (SQLSTATE %s): valuing in parts", isolation.sqlstate(whole))
    ids = list(session.execute(
        text(f"SELECT p.id FROM pledge p WHERE p.status = '{ACTIVE_PLEDGE}' {pledge_filter} ORDER BY p.id"), params
    ).scalars())  # fmt: skip
    parts = isolation.each_part(
        session, ids, lambda some: value(_named("part"), {"part": list(some)}), what="revaluation"
    )
    for pledge_id, exc in parts.failed:
        out_of_range = isolation.sqlstate(exc) == NUMERIC_VALUE_OUT_OF_RANGE
        error = ValuationError.OUT_OF_RANGE if out_of_range else ValuationError.ERROR
        mark = partial(session.execute, text(_UNVALUED), {**params, "id": pledge_id, "error": error})
        marked = isolation.attempt(session, mark)
        if isinstance(marked, DBAPIError):  # not even that: the log is all that is left to say it
            log.error(
                "pledge %s could not be valued nor marked (SQLSTATE %s)",
                pledge_id,
                isolation.sqlstate(marked),
            )
    return sum(parts.done, Revaluation(0, 0, 0, unvalued=len(parts.failed)))


@dataclass(frozen=True, slots=True)
class _Which:
    """Which pledges a pass values: a condition on the pledge (`p`), and the same one on its blocks (`h`),
    so that the blocks are found through their own index whatever the planner believes of the pledges (a
    condition on `p.id` alone does not reach `h.pledge_id` across the join: with the pledge table's
    statistics stale, a confirmation's valuation read every pledged block, each against every pledge)."""

    pledges: str = ""
    blocks: str = ""


_EVERY = _Which()


def _named(param: str) -> _Which:
    return _Which(f"AND p.id = ANY(:{param})", f"AND h.pledge_id = ANY(:{param})")


def _statement(which: _Which) -> str:
    return _REVALUE.format(pledge_filter=which.pledges, block_filter=which.blocks)


def _prepared(which: _Which) -> str:
    """_REVALUE for registry.db.run. Only for a few named pledges: a prepared statement may be planned once
    for all parameters, which suits one pledge, not a whole credit type."""
    return driver_sql(_statement(which))


NUMERIC_VALUE_OUT_OF_RANGE = "22003"

# What a pledge that could not be valued gets: a valuation without figures, saying why.
_UNVALUED = (
    """
INSERT INTO valuation (pledge_id, valued_at, as_of, method, stale, quantity, outstanding_principal, error)
SELECT p.id, :now, :as_of, p.valuation_method, false,
       coalesce((SELECT sum(h.quantity) FROM holding h WHERE h.pledge_id = p.id AND h.status = '"""
    + BlockStatus.FROZEN
    + """'), 0),
       p.outstanding_principal, :error
  FROM pledge p WHERE p.id = :id
"""
)


def history(session: Session, pledge_id: UUID, *, before_id: int | None, limit: int) -> list[Any]:
    return list(
        session.execute(
            text("""
                SELECT id, valued_at, as_of, method, price, price_date, stale, quantity, collateral_value,
                       outstanding_principal, coverage_ratio, pledge_rate, level, error
                  FROM valuation WHERE pledge_id = :p AND (CAST(:before AS bigint) IS NULL OR id < :before)
                 ORDER BY id DESC LIMIT :limit"""),
            {"p": pledge_id, "before": before_id, "limit": limit},
        ).all()
    )


def changes(session: Session, pledge_id: UUID, *, before_id: int | None, limit: int) -> list[Any]:
    """The valuation history as a person reads it, newest first: a valuation that says the same as the one
    before it (a price post that moved nothing for this pledge) is left out."""
    return list(
        session.execute(
            text("""
                SELECT * FROM (
                    SELECT id, valued_at, as_of, method, price, price_date, stale, quantity, collateral_value,
                           outstanding_principal, coverage_ratio, pledge_rate, level, error,
                           row(as_of, price, stale, quantity, collateral_value, outstanding_principal, level, error)
                               IS NOT DISTINCT FROM lag(row(as_of, price, stale, quantity, collateral_value,
                                                            outstanding_principal, level, error)) OVER (ORDER BY id)
                               AS repeats
                      FROM valuation WHERE pledge_id = :p
                ) v
                 WHERE NOT repeats AND (CAST(:before AS bigint) IS NULL OR id < :before)
                 ORDER BY id DESC LIMIT :limit"""),
            {"p": pledge_id, "before": before_id, "limit": limit},
        ).all()
    )


def latest(session: Session, pledge_ids: Sequence[UUID]) -> dict[UUID, Any]:
    rows = session.execute(
        text("""
            SELECT DISTINCT ON (pledge_id) pledge_id, id, valued_at, as_of, method, price, price_date, stale,
                   quantity, collateral_value, outstanding_principal, coverage_ratio, pledge_rate, level, error
              FROM valuation WHERE pledge_id = ANY(:ids) ORDER BY pledge_id, id DESC"""),
        {"ids": list(pledge_ids)},
    )
    return {r.pledge_id: r for r in rows}
