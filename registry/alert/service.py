"""Maturity alerts, listing and acknowledging alerts, and the banks' webhook configuration.

Margin and stale-price alerts are raised and cleared by the revaluation itself (registry/valuation);
every raised or cleared alert of a bank with a webhook gets an outbox row in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from registry import isolation, outbound
from registry.alert import policy as alert_policy
from registry.alert.models import AlertKind, AlertStatus, DeliveryStatus, WebhookEvent
from registry.calendar import exchange_day
from registry.config import MATURITY_ALERT_DAYS
from registry.db import driver_sql, run
from registry.errors import InvalidInput, NotFound
from registry.principal import Actor, Principal

# A pledge status, written here because pledge sits above alert (it imports this module);
# tests/test_vocabulary.py holds it equal to PledgeStatus.ACTIVE.
ACTIVE_PLEDGE = "active"
A = AlertKind


def _outbox(events: str) -> str:
    """The CTE queueing a webhook delivery for each alert event of `events` (rows of alert columns and an
    `event`) whose bank has a webhook: in the statement that raises or clears the alerts."""
    return f"""outbox AS (
    INSERT INTO webhook_delivery (alert_id, party_id, event, payload, next_attempt_at, created_at)
    SELECT e.id, e.pledgee_party_id, e.event,
           jsonb_build_object('event', e.event, 'alert_id', e.id, 'pledge_id', e.pledge_id, 'kind', e.kind,
                              'trigger', e.trigger, 'details', e.details, 'at', :now),
           :now, :now
      FROM ({events}) e
      JOIN webhook wh ON wh.party_id = e.pledgee_party_id
    RETURNING 1
)"""


_MATURITY_EVENTS = f"""SELECT *, '{WebhookEvent.RAISED}' AS event FROM upcoming
            UNION ALL SELECT *, '{WebhookEvent.RAISED}' FROM matured
            UNION ALL SELECT *, '{WebhookEvent.CLEARED}' FROM cleared"""
_CLEARED_EVENTS = f"SELECT *, '{WebhookEvent.CLEARED}' AS event FROM cleared"

_MATURITY = f"""
WITH due AS (
    SELECT p.id AS pledge_id, p.pledgee_party_id, p.maturity_date,
           (SELECT min(k) FROM unnest(CAST(:days AS int[])) AS k WHERE p.maturity_date - k <= :today) AS days_before
      FROM pledge p
     WHERE p.status = '{ACTIVE_PLEDGE}' AND p.maturity_date - :max_days <= :today {{pledge_filter}}
),
upcoming AS (
    INSERT INTO alert (pledge_id, pledgee_party_id, kind, trigger, raised_at, details)
    SELECT pledge_id, pledgee_party_id, '{A.MATURITY_UPCOMING}', days_before::text, :now,
           jsonb_build_object('maturity_date', maturity_date, 'days_before', days_before)
      FROM due WHERE days_before IS NOT NULL AND maturity_date > :today
    ON CONFLICT DO NOTHING
    RETURNING id, pledge_id, pledgee_party_id, kind, trigger, details
),
matured AS (
    INSERT INTO alert (pledge_id, pledgee_party_id, kind, trigger, raised_at, details)
    SELECT pledge_id, pledgee_party_id, '{A.MATURED_UNRELEASED}', '', :now,
           jsonb_build_object('maturity_date', maturity_date)
      FROM due WHERE maturity_date <= :today
    ON CONFLICT DO NOTHING
    RETURNING id, pledge_id, pledgee_party_id, kind, trigger, details
),
cleared AS (
    -- A closed pledge has no open alerts; a reminder of a maturity that has come is done.
    UPDATE alert a SET status = '{AlertStatus.CLEARED}', cleared_at = :now
      FROM pledge p
     WHERE p.id = a.pledge_id AND a.status = '{AlertStatus.OPEN}' {{pledge_filter}} {{alert_filter}}
       AND (p.status <> '{ACTIVE_PLEDGE}' OR (a.kind = '{A.MATURITY_UPCOMING}' AND p.maturity_date <= :today))
    RETURNING a.id, a.pledge_id, a.pledgee_party_id, a.kind, a.trigger, a.details
),
{_outbox(_MATURITY_EVENTS)}
SELECT (SELECT count(*) FROM upcoming) + (SELECT count(*) FROM matured) AS raised,
       (SELECT count(*) FROM cleared) AS cleared
"""

# A pledge just released or disposed (the caller holds its row lock and knows it closed): its open alerts
# cleared, with their webhooks. What _MATURITY does for a closed pledge (it raises nothing for one that is
# not active), without planning the rest; looked up through the alerts' own index on the pledge.
_CLEAR_CLOSED = f"""
WITH cleared AS (
    UPDATE alert a SET status = '{AlertStatus.CLEARED}', cleared_at = :now
     WHERE a.pledge_id = :pledge AND a.status = '{AlertStatus.OPEN}'
    RETURNING a.id, a.pledge_id, a.pledgee_party_id, a.kind, a.trigger, a.details
),
{_outbox(_CLEARED_EVENTS)}
SELECT count(*) AS cleared FROM cleared
"""
_CLEAR_CLOSED_SQL = driver_sql(_CLEAR_CLOSED)  # prepared (registry.db.run): one statement a closing


# The pledges the statement above may touch: due ones, and those with open alerts.
_MATURITY_PLEDGES = f"""
SELECT p.id FROM pledge p
 WHERE (p.status = '{ACTIVE_PLEDGE}' AND p.maturity_date - :max_days <= :today)
    OR EXISTS (SELECT 1 FROM alert a WHERE a.pledge_id = p.id AND a.status = '{AlertStatus.OPEN}')
 ORDER BY p.id
"""


def refresh_maturity(
    session: Session, *, now: datetime, days_before: Sequence[int] = MATURITY_ALERT_DAYS
) -> tuple[int, int]:
    """Reminders 30, 7 and 1 days before maturity (the nearest one due, each once), `matured_unreleased`
    once a pledge is past maturity and still pledged; alerts of closed pledges cleared. One statement for
    all pledges; should the database refuse it for one, the others are done all the same
    (registry/isolation.py) and that pledge is named in the log."""
    days = sorted({int(d) for d in days_before if int(d) > 0}, reverse=True) or [1]
    params = {"now": now, "today": exchange_day(now), "days": days, "max_days": max(days)}

    def refresh(statement: str, extra: dict[str, Any]) -> tuple[int, int]:
        row = session.execute(text(statement), {**params, **extra}).one()
        return int(row.raised), int(row.cleared)

    whole = isolation.attempt(session, lambda: refresh(_maturity(), {}))
    if not isinstance(whole, DBAPIError):
        return whole
    ids = list(session.execute(text(_MATURITY_PLEDGES), params).scalars())
    parts = isolation.each_part(
        session, ids, lambda some: refresh(_maturity("part"), {"part": list(some)}), what="maturity alerts"
    )
    return sum(r for r, _ in parts.done), sum(c for _, c in parts.done)


def clear_closed(session: Session, pledge_id: UUID, *, now: datetime) -> int:
    """A pledge that was just released or disposed has no open alert any more: cleared (and the bank's
    webhook told) in the transaction that closes it, not at the next revaluation."""
    return int(run(session, _CLEAR_CLOSED_SQL, {"now": now, "pledge": pledge_id})[0].cleared)


def _maturity(named: str | None = None) -> str:
    """_MATURITY for every pledge, or for those whose ids are the parameter `named`: the condition on the
    pledge and the same one on its alerts, so that the alerts are found through their own index whatever
    the planner believes of the pledges (a condition on `p.id` does not reach `a.pledge_id` across the join;
    the same rule as the valuation's, registry/valuation/service.py `_Which`)."""
    if named is None:
        return _MATURITY.format(pledge_filter="", alert_filter="")
    return _MATURITY.format(
        pledge_filter=f"AND p.id = ANY(:{named})", alert_filter=f"AND a.pledge_id = ANY(:{named})"
    )


# --- reading and acknowledging ---------------------------------------------------------------------


def list_alerts(session: Session, principal: Principal, *, pledge_id: UUID | None, kind: AlertKind | None,
                status: AlertStatus | None, after: int | None, limit: int) -> list[Any]:  # fmt: skip
    scope = alert_policy.require_reader(principal)
    return list(
        session.execute(
            text("""
                SELECT a.id, a.pledge_id, p.registration_no, a.kind, a.trigger, a.status, a.raised_at, a.cleared_at,
                       a.acked_at, a.acked_by, a.details
                  FROM alert a JOIN pledge p ON p.id = a.pledge_id
                 WHERE (CAST(:bank AS uuid) IS NULL OR a.pledgee_party_id = :bank)
                   AND (CAST(:pledge AS uuid) IS NULL OR a.pledge_id = :pledge)
                   AND (CAST(:kind AS text) IS NULL OR a.kind = :kind)
                   AND (CAST(:status AS text) IS NULL OR a.status = :status)
                   AND a.id > :after
                 ORDER BY a.id LIMIT :limit"""),
            {"bank": scope, "pledge": pledge_id, "kind": kind, "status": status, "after": after or 0,
             "limit": limit},
        ).all()
    )  # fmt: skip


def acknowledge(session: Session, actor: Actor, alert_id: int) -> Any:
    principal = actor.principal
    alert_policy.require_acknowledger(
        principal
    )  # before the lock: a role that may never acknowledge waits for nothing
    row = session.execute(
        text("SELECT id, pledgee_party_id, acked_at FROM alert WHERE id = :id FOR UPDATE"), {"id": alert_id}
    ).first()
    alert_policy.require_own(principal, alert_id, row.pledgee_party_id if row is not None else None)
    assert row is not None
    if row.acked_at is None:
        session.execute(
            text("UPDATE alert SET acked_at = :now, acked_by = :who WHERE id = :id"),
            {"now": actor.at, "who": principal.operator or principal.role.value, "id": alert_id},
        )
    return list_alerts(
        session, principal, pledge_id=None, kind=None, status=None, after=alert_id - 1, limit=1
    )[0]


# --- webhooks -------------------------------------------------------------------------------------


MIN_SECRET_LENGTH = 16  # an HMAC key a bank chooses: long enough not to be guessed


def set_webhook(session: Session, actor: Actor, *, url: str, secret: str, policy: outbound.Policy) -> None:
    """A bank's endpoint for alerts, signed with its secret (HMAC-SHA256 of the body). The URL is checked
    by the code that will call it (registry/outbound.py), and checked again at every delivery."""
    principal = actor.principal
    alert_policy.require_webhook_owner(principal)
    try:
        outbound.check(url, policy)
    except outbound.Refused as refused:
        raise InvalidInput("url", refused.reason) from None
    if len(secret) < MIN_SECRET_LENGTH:
        raise InvalidInput("secret", f"at least {MIN_SECRET_LENGTH} characters")
    session.execute(
        text("""
            INSERT INTO webhook (party_id, url, secret, updated_at) VALUES (:p, :u, :s, :now)
            ON CONFLICT (party_id) DO UPDATE SET url = EXCLUDED.url, secret = EXCLUDED.secret,
                                                 updated_at = EXCLUDED.updated_at"""),
        {"p": principal.party_id, "u": url, "s": secret, "now": actor.at},
    )


def get_webhook(session: Session, principal: Principal) -> Any:
    alert_policy.require_webhook_owner(principal)
    row = session.execute(
        text("SELECT url, updated_at FROM webhook WHERE party_id = :p"), {"p": principal.party_id}
    ).first()
    if row is None:
        raise NotFound("webhook", "of this bank")
    return row


def deliveries(session: Session, principal: Principal, *, status: DeliveryStatus | None, after: int | None,
               limit: int) -> list[Any]:  # fmt: skip
    scope = alert_policy.require_reader(principal)  # deliveries of alerts: the lender's as the alerts are
    return list(
        session.execute(
            text("""
                SELECT id, alert_id, event, status, attempts, next_attempt_at, last_error, delivered_at, created_at
                  FROM webhook_delivery
                 WHERE (CAST(:p AS uuid) IS NULL OR party_id = :p)
                   AND (CAST(:status AS text) IS NULL OR status = :status) AND id > :after
                 ORDER BY id LIMIT :limit"""),
            {"p": scope, "status": status, "after": after or 0, "limit": limit},
        ).all()
    )
