"""Trade prints: loading (all or nothing) and reading."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from registry import authz
from registry.calendar import check_day, exchange_day
from registry.errors import InvalidInput
from registry.ledger import repository as ledger_repo
from registry.principal import Actor, Principal, Role
from registry.valuation.models import MAX_PRICE, MAX_VOLUME, TradeKind


@dataclass(frozen=True, slots=True)
class Trade:
    credit_type: str
    trade_date: date
    price: Decimal
    volume: int
    kind: TradeKind = TradeKind.LISTED


@dataclass(frozen=True, slots=True)
class Loaded:
    inserted: int
    replaced: int
    credit_type_ids: list[int]


def record_trades(
    session: Session, actor: Actor, trades: Sequence[Trade], *, field: str = "trades"
) -> Loaded:
    """Load a batch of daily prints in one statement: all of them or none. A print for a day that already
    has one (same credit type and kind) replaces it; two prints for one day within a batch are refused."""
    authz.require_role(actor.principal, Role.EXCHANGE, Role.SYSTEM)
    codes = {code: ct_id for ct_id, code in ledger_repo.credit_type_codes(session).items()}
    seen: set[tuple[str, str, date]] = set()
    today = exchange_day(actor.at)
    for n, t in enumerate(trades):
        where = f"{field}[{n}]"
        check_day(t.trade_date, f"{where}.trade_date", today=today)  # no print for a day not yet traded
        if t.credit_type not in codes:
            raise InvalidInput(f"{where}.credit_type", f"unknown credit type {t.credit_type}")
        if t.kind not in frozenset(TradeKind):  # StrEnum: its members equal their values
            raise InvalidInput(f"{where}.kind", " or ".join(TradeKind))
        if not Decimal(0) < t.price <= MAX_PRICE:
            raise InvalidInput(f"{where}.price", "a price is positive")
        if not 0 < t.volume <= MAX_VOLUME:
            raise InvalidInput(f"{where}.volume", "a volume is a positive number of units")
        key = (t.credit_type, t.kind, t.trade_date)
        if key in seen:
            raise InvalidInput(
                where, f"a second {t.kind} print for {t.credit_type} on {t.trade_date} in one batch"
            )
        seen.add(key)
    if not trades:
        return Loaded(0, 0, [])
    row = session.execute(
        text("""
            INSERT INTO trade_price (credit_type_id, trade_date, kind, price, volume, entered_at, entered_by)
            SELECT * FROM unnest(CAST(:ct AS smallint[]), CAST(:d AS date[]), CAST(:k AS text[]),
                                 CAST(:p AS numeric[]), CAST(:v AS bigint[]), CAST(:at AS timestamptz[]),
                                 CAST(:by AS text[]))
            ON CONFLICT (credit_type_id, kind, trade_date) DO UPDATE
               SET price = EXCLUDED.price, volume = EXCLUDED.volume, entered_at = EXCLUDED.entered_at,
                   entered_by = EXCLUDED.entered_by
            RETURNING (xmax = 0) AS inserted"""),
        {
            "ct": [codes[t.credit_type] for t in trades], "d": [t.trade_date for t in trades],
            "k": [t.kind for t in trades], "p": [t.price for t in trades], "v": [t.volume for t in trades],
            "at": [actor.at] * len(trades), "by": [_who(actor.principal)] * len(trades),
        },
    ).all()  # fmt: skip
    inserted = sum(1 for r in row if r.inserted)
    return Loaded(inserted, len(row) - inserted, sorted({codes[t.credit_type] for t in trades}))


# A day's prints in the order they are listed (the order of the text, as the query sorts them); a page's
# cursor names a kind by its index here.
TRADE_KINDS = tuple(sorted(TradeKind))


def prints(session: Session, credit_type_id: int, *, start: date | None, end: date | None, kind: TradeKind | None,
           after: tuple[date, TradeKind] | None = None, limit: int = 1000) -> list[Any]:  # fmt: skip
    """A credit type's prints by day, oldest first: a page of `limit` after the print `after` (its day and
    kind)."""
    after_day, after_kind = after or (None, None)
    return list(
        session.execute(
            text("""
                SELECT trade_date, kind, price, volume FROM trade_price
                 WHERE credit_type_id = :ct AND (CAST(:start AS date) IS NULL OR trade_date >= :start)
                   AND (CAST(:end AS date) IS NULL OR trade_date <= :end)
                   AND (CAST(:kind AS text) IS NULL OR kind = :kind)
                   AND (CAST(:after_day AS date) IS NULL OR (trade_date, kind) > (:after_day, :after_kind))
                 ORDER BY trade_date, kind LIMIT :limit"""),
            {"ct": credit_type_id, "start": start, "end": end, "kind": kind, "after_day": after_day,
             "after_kind": after_kind, "limit": limit},
        ).all()
    )  # fmt: skip


def _who(principal: Principal) -> str:
    return principal.operator or principal.role.value
