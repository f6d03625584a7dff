"""Whole-ledger consistency checks (units, blocks, pledges, certificates, audit heads) in set-based SQL:
what `registry check` and every ledger test run.

Each query returns rows only when something is wrong; the message names what."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session

CHECKS: dict[str, str] = {
    "units of a credit type differ from what was issued": """
        SELECT ct.code || ': blocks hold ' || coalesce(h.units, 0) || ', issued ' || coalesce(i.units, 0)
          FROM credit_type ct
          LEFT JOIN (SELECT credit_type_id, sum(quantity) AS units FROM holding GROUP BY 1) h
                 ON h.credit_type_id = ct.id
          LEFT JOIN (SELECT credit_type_id, sum(quantity) AS units FROM issuance GROUP BY 1) i
                 ON i.credit_type_id = ct.id
         WHERE coalesce(h.units, 0) <> coalesce(i.units, 0)""",
    "a batch is not exactly tiled by its blocks": """
        SELECT 'batch ' || i.id || ': ' || coalesce(b.units, 0) || ' units in blocks of ' || i.quantity
          FROM issuance i
          LEFT JOIN (SELECT batch_id, sum(quantity) AS units, min(serial_start) AS lo, max(serial_end) AS hi
                       FROM holding GROUP BY batch_id) b ON b.batch_id = i.id
         WHERE coalesce(b.units, 0) <> i.quantity OR b.lo <> i.serial_start OR b.hi <> i.serial_end""",
    "blocks overlap": """
        SELECT 'blocks ' || prev_id || ' and ' || id || ' overlap'
          FROM (SELECT id, serial_start, lag(serial_end) OVER w AS prev_end, lag(id) OVER w AS prev_id
                  FROM holding WINDOW w AS (PARTITION BY credit_type_id ORDER BY serial_start)) x
         WHERE prev_end >= serial_start""",
    "a held or frozen block names no pledge, or an available one names one": """
        SELECT 'block ' || id || ' is ' || status || ' with pledge ' || coalesce(pledge_id::text, 'none')
          FROM holding WHERE (status IN ('held', 'frozen')) <> (pledge_id IS NOT NULL)""",
    "a held block's pledge is not open": """
        SELECT 'block ' || h.id || ' is held for pledge ' || p.id || ', which is ' || p.status
          FROM holding h JOIN pledge p ON p.id = h.pledge_id
         WHERE h.status = 'held' AND p.status NOT IN ('pending', 'active')""",
    "a frozen block's pledge is not active": """
        SELECT 'block ' || h.id || ' is frozen for pledge ' || p.id || ', which is ' || p.status
          FROM holding h JOIN pledge p ON p.id = h.pledge_id
         WHERE h.status = 'frozen' AND p.status <> 'active'""",
    "held units without an instruction waiting for them": """
        SELECT 'pledge ' || p.id || ' holds units but no register or top-up waits'
          FROM pledge p
         WHERE EXISTS (SELECT 1 FROM holding h WHERE h.pledge_id = p.id AND h.status = 'held')
           AND EXISTS (SELECT 1 FROM instruction i WHERE i.pledge_id = p.id)
           AND NOT EXISTS (SELECT 1 FROM instruction i WHERE i.pledge_id = p.id
                             AND i.status IN ('pending', 'awaiting_consent') AND i.type IN ('register', 'top_up'))""",
    "units held before the pledgor agreed": """
        SELECT 'pledge ' || p.id || ' holds units for instruction ' || i.id || ', which the bank asked and the '
               || 'pledgor has not consented to'
          FROM instruction i JOIN pledge p ON p.id = i.pledge_id
         WHERE i.status = 'awaiting_consent' AND i.requested_by_party_id <> p.pledgor_party_id
           AND EXISTS (SELECT 1 FROM holding h WHERE h.pledge_id = p.id AND h.status = 'held')""",
    "a confirmed active pledge has no valid certificate, or one that states other units": """
        SELECT 'pledge ' || p.id || ': frozen ' || coalesce(h.units, 0) || ', valid certificate '
               || coalesce(c.number || ' for ' || c.quantity, 'none')
          FROM pledge p
          LEFT JOIN certificate c ON c.pledge_id = p.id AND c.status = 'valid'
          LEFT JOIN (SELECT pledge_id, sum(quantity) AS units FROM holding WHERE status = 'frozen' GROUP BY 1) h
                 ON h.pledge_id = p.id
         WHERE p.status = 'active'
           AND EXISTS (SELECT 1 FROM instruction i WHERE i.pledge_id = p.id AND i.type = 'register'
                         AND i.status = 'confirmed')
           AND (c.id IS NULL OR c.quantity <> coalesce(h.units, 0))""",
    "a pledge that is not active has a valid certificate": """
        SELECT 'certificate ' || c.number || ' is valid but pledge ' || p.id || ' is ' || p.status
          FROM certificate c JOIN pledge p ON p.id = c.pledge_id
         WHERE c.status = 'valid' AND p.status <> 'active'""",
    # The trail is the ledger's history: replaying it (each serial takes the state named by the latest
    # event that touched it) must give the blocks as they are. Checked on the pieces between every block
    # and event boundary, set-based: the boundaries numbered in order, each block and event spread over
    # the numbers of the pieces it covers, the latest event a piece kept by one sort. (A lookup by the
    # GiST indexes per piece was ~100 µs a piece once the indexes outgrew the cache.)
    "the blocks differ from a replay of the audit trail": """
        WITH cut AS MATERIALIZED (
            SELECT ct, at, row_number() OVER w AS n, lead(at) OVER w - 1 AS hi
              FROM (SELECT credit_type_id AS ct, serial_start AS at FROM holding
                    UNION SELECT credit_type_id, serial_end + 1 FROM holding
                    UNION SELECT credit_type_id, serial_start FROM audit_event
                    UNION SELECT credit_type_id, serial_end + 1 FROM audit_event) c
            WINDOW w AS (ORDER BY ct, at)
        ), trail AS (
            SELECT DISTINCT ON (p) p, e.id, e.to_account_id, e.to_status, e.to_pledge_id
              FROM audit_event e
              JOIN cut s ON s.ct = e.credit_type_id AND s.at = e.serial_start
              JOIN cut x ON x.ct = e.credit_type_id AND x.at = e.serial_end + 1
              CROSS JOIN generate_series(s.n, x.n - 1) p
             ORDER BY p, e.id DESC
        ), block AS (
            SELECT p, h.account_id, h.status, h.pledge_id
              FROM holding h
              JOIN cut s ON s.ct = h.credit_type_id AND s.at = h.serial_start
              JOIN cut x ON x.ct = h.credit_type_id AND x.at = h.serial_end + 1
              CROSS JOIN generate_series(s.n, x.n - 1) p
        ), differ AS (
            SELECT coalesce(b.p, t.p) AS p, b.account_id, b.status, b.pledge_id,
                   t.id, t.to_account_id, t.to_status, t.to_pledge_id
              FROM block b FULL JOIN trail t ON t.p = b.p
             WHERE (b.account_id, b.status, b.pledge_id) IS DISTINCT FROM (t.to_account_id, t.to_status, t.to_pledge_id)
        )
        SELECT 'credit type ' || c.ct || ' serials ' || c.at || '-' || c.hi || ': block says '
               || coalesce(d.account_id::text || ' ' || d.status || coalesce(' ' || d.pledge_id, ''), 'nothing')
               || ', the trail says '
               || coalesce(d.to_account_id::text || ' ' || d.to_status || coalesce(' ' || d.to_pledge_id, ''),
                           'nothing') || coalesce(' (event ' || d.id || ')', '')
          FROM differ d JOIN cut c ON c.n = d.p""",
    "an account's chain head disagrees with its events": """
        SELECT 'account ' || a.number || ': head at ' || a.audit_seq || ', events up to ' || coalesce(e.seq, 0)
          FROM account a
          LEFT JOIN (SELECT account_id, max(seq) AS seq FROM audit_event GROUP BY 1) e ON e.account_id = a.id
         WHERE a.audit_seq <> coalesce(e.seq, 0)""",
}


def find_problems(session: Session, *, limit_per_check: int = 20) -> list[str]:
    problems: list[str] = []
    for title, sql in CHECKS.items():
        rows = session.execute(text(f"{sql} LIMIT {int(limit_per_check)}")).scalars().all()
        problems += [f"{title}: {row}" for row in rows]
    return problems
