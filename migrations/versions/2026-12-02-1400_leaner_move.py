"""A movement in fewer executor start-ups: the span function inlined, the move's statements merged.

Revision ID: 0017_leaner_move
Revises: 0016_hash_inlined
Create Date: 2026-12-02 14:00

Counted with callgrind on a single-user backend (instructions a transfer: claim, move, store, commit;
docs/benchmarks.md): 5.02 M before, 4.69 M after.

- `registry_span` was `STRICT` with a body that is not (`int8range` of a NULL bound is an unbounded range),
  so PostgreSQL could never inline it: every row written to `holding` or `audit_event` computed its
  generated `span` through a SQL-function call (an executor of its own, ~80,000 instructions; four a
  transfer), as did every query that names it. It now says what its body does with NULLs in the body (a
  NULL for any NULL argument, as before) and is inlined wherever it is used. Stored spans do not change:
  for non-NULL arguments the value is the same, and the generated columns are NOT NULL.
- `registry_move` names the credit type in the statement that locks the accounts, appends the events and
  moves the chain head in one statement, and returns its rows without a query. Refusals, their order
  (unknown credit type, then unknown account, then a closed one), locks and results are as before.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0017_leaner_move"
down_revision: str | None = "0016_hash_inlined"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "'\\x" + "00" * 32 + "'::bytea"

SPAN = """
CREATE OR REPLACE FUNCTION registry_span(ct smallint, s bigint, e bigint) RETURNS int8range
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN ct IS NOT NULL AND s IS NOT NULL AND e IS NOT NULL
                THEN int8range((ct::bigint << 40) + s, (ct::bigint << 40) + e, '[]') END;
"""

SPAN_BEFORE = """
CREATE OR REPLACE FUNCTION registry_span(ct smallint, s bigint, e bigint) RETURNS int8range
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN int8range((ct::bigint << 40) + s, (ct::bigint << 40) + e, '[]');
"""

MOVE = f"""
CREATE OR REPLACE FUNCTION registry_move(
    p_kind text,
    p_source_account uuid, p_source_status text, p_source_pledge uuid,
    p_target_account uuid, p_target_status text, p_target_pledge uuid,
    p_credit_type_code text, p_quantity bigint, p_starts bigint[], p_ends bigint[], p_all boolean,
    p_actor_role text, p_actor_party uuid, p_actor_key uuid, p_operator text, p_on_behalf uuid,
    p_request_id text, p_instruction uuid, p_reason text, p_at timestamptz,
    p_require_active uuid[]
) RETURNS TABLE (credit_type text, batch_id uuid, serial_start bigint, serial_end bigint, refusal jsonb)
LANGUAGE plpgsql
-- Its statements take arrays whose lengths the planner cannot know: a custom plan per call costs more than
-- the statement (the islands query planned each call took 1.3 ms; its generic plan runs in 0.2 ms).
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    -- The pieces, in (credit type, serial) order: the block each comes from and the part taken.
    v_id bigint[]; v_batch uuid[]; v_ct smallint[]; v_bs bigint[]; v_be bigint[]; v_ps bigint[]; v_pe bigint[];
    v_seq bigint; v_head bytea; v_got bigint; v_asked bigint; v_missing jsonb; v_n int; r record;
    v_source_found boolean := false; v_target_found boolean := false; v_closed uuid;
    p_credit_type smallint;
    -- The target's islands: credit type, batch, range, and the target row each keeps (NULL: none yet).
    t_ct smallint[]; t_batch uuid[]; t_s bigint[]; t_e bigint[]; t_keep bigint[];
    -- The plan: rows updated (to the target's state or staying in the source's), inserted, deleted.
    u_id bigint[] := '{{}}'; u_s bigint[] := '{{}}'; u_e bigint[] := '{{}}'; u_to boolean[] := '{{}}';
    n_ct smallint[] := '{{}}'; n_batch uuid[] := '{{}}'; n_s bigint[] := '{{}}'; n_e bigint[] := '{{}}';
    n_to boolean[] := '{{}}';
    d_id bigint[];
    -- Source rows no remnant needs, with their batches: an island may take one.
    f_id bigint[] := '{{}}'; f_batch uuid[] := '{{}}';
    v_cur bigint; kept boolean; j int; v_codes text[];
    e_prev bytea[] := '{{}}'; e_hash bytea[] := '{{}}';
BEGIN
    -- The accounts, in id order (two movements never wait on each other in a cycle), read as locked, and
    -- the credit type named: one statement (each costs an executor start-up, the bulk of a small one).
    FOR r IN SELECT c.ct, a.id, a.status, a.audit_seq, a.audit_head
               FROM (SELECT (SELECT t.id FROM credit_type t WHERE t.code = p_credit_type_code) AS ct) c
               LEFT JOIN LATERAL (SELECT a.id, a.status, a.audit_seq, a.audit_head FROM account a
                                   WHERE a.id IN (p_source_account, p_target_account)
                                   ORDER BY a.id FOR NO KEY UPDATE) a ON true LOOP
        p_credit_type := r.ct;
        IF r.id = p_source_account THEN
            v_source_found := true; v_seq := r.audit_seq; v_head := coalesce(r.audit_head, {GENESIS});
        END IF;
        IF r.id = p_target_account THEN
            v_target_found := true;
        END IF;
        IF v_closed IS NULL AND r.id = ANY(p_require_active) AND r.status <> 'active' THEN
            v_closed := r.id;
        END IF;
    END LOOP;
    IF p_credit_type_code IS NOT NULL AND p_credit_type IS NULL THEN
        refusal := jsonb_build_object('code', 'unknown_credit_type');
        RETURN NEXT;
        RETURN;
    END IF;
    IF NOT v_source_found OR NOT v_target_found THEN
        refusal := jsonb_build_object('code', 'account_not_found',
                                      'account_id', CASE WHEN v_source_found THEN p_target_account
                                                         ELSE p_source_account END);
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_closed IS NULL AND NOT (p_require_active <@ ARRAY[p_source_account, p_target_account]) THEN
        SELECT id INTO v_closed FROM account WHERE id = ANY(p_require_active) AND status <> 'active' LIMIT 1;
    END IF;
    IF v_closed IS NOT NULL THEN
        refusal := jsonb_build_object('code', 'account_closed', 'account_id', v_closed);
        RETURN NEXT;
        RETURN;
    END IF;

    -- Read after the locks are held (each statement of the function takes a fresh snapshot).
    IF p_quantity IS NOT NULL THEN
        SELECT array_agg(b.id ORDER BY b.serial_start), array_agg(b.batch_id ORDER BY b.serial_start),
               array_agg(b.credit_type_id ORDER BY b.serial_start), array_agg(b.serial_start ORDER BY b.serial_start),
               array_agg(b.serial_end ORDER BY b.serial_start), array_agg(b.serial_start ORDER BY b.serial_start),
               array_agg(b.serial_end - greatest(b.upto - p_quantity, 0) ORDER BY b.serial_start),
               coalesce(sum(b.serial_end - greatest(b.upto - p_quantity, 0) - b.serial_start + 1), 0)
          INTO v_id, v_batch, v_ct, v_bs, v_be, v_ps, v_pe, v_got
          FROM (SELECT h.id, h.batch_id, h.credit_type_id, h.serial_start, h.serial_end, h.quantity,
                       sum(h.quantity) OVER (ORDER BY h.serial_start) AS upto
                  FROM holding h
                 WHERE h.account_id = p_source_account AND h.credit_type_id = p_credit_type
                   AND h.status = p_source_status AND h.pledge_id IS NOT DISTINCT FROM p_source_pledge) b
         WHERE b.upto - b.quantity < p_quantity;
        IF v_got < p_quantity THEN
            refusal := jsonb_build_object('code', 'insufficient_units', 'requested', p_quantity, 'available', v_got);
            RETURN NEXT;
            RETURN;
        END IF;
    ELSIF p_all THEN
        SELECT array_agg(h.id ORDER BY h.credit_type_id, h.serial_start),
               array_agg(h.batch_id ORDER BY h.credit_type_id, h.serial_start),
               array_agg(h.credit_type_id ORDER BY h.credit_type_id, h.serial_start),
               array_agg(h.serial_start ORDER BY h.credit_type_id, h.serial_start),
               array_agg(h.serial_end ORDER BY h.credit_type_id, h.serial_start)
          INTO v_id, v_batch, v_ct, v_bs, v_be
          FROM holding h
         WHERE h.account_id = p_source_account AND h.status = p_source_status
           AND h.pledge_id IS NOT DISTINCT FROM p_source_pledge
           AND (p_credit_type IS NULL OR h.credit_type_id = p_credit_type);
        v_ps := v_bs; v_pe := v_be;
    ELSE
        -- Named ranges (sorted, disjoint: the caller normalizes them) cut out of the blocks they meet.
        SELECT array_agg(h.id ORDER BY greatest(h.serial_start, r.s)), array_agg(h.batch_id ORDER BY greatest(h.serial_start, r.s)),
               array_agg(h.credit_type_id ORDER BY greatest(h.serial_start, r.s)),
               array_agg(h.serial_start ORDER BY greatest(h.serial_start, r.s)),
               array_agg(h.serial_end ORDER BY greatest(h.serial_start, r.s)),
               array_agg(greatest(h.serial_start, r.s) ORDER BY greatest(h.serial_start, r.s)),
               array_agg(least(h.serial_end, r.e) ORDER BY greatest(h.serial_start, r.s)),
               coalesce(sum(least(h.serial_end, r.e) - greatest(h.serial_start, r.s) + 1), 0)
          INTO v_id, v_batch, v_ct, v_bs, v_be, v_ps, v_pe, v_got
          FROM unnest(p_starts, p_ends) AS r(s, e)
          JOIN holding h ON h.account_id = p_source_account AND h.credit_type_id = p_credit_type
                        AND h.status = p_source_status AND h.pledge_id IS NOT DISTINCT FROM p_source_pledge
                        AND h.span && registry_span(p_credit_type, r.s, r.e);
        SELECT sum(e - s + 1) INTO v_asked FROM unnest(p_starts, p_ends) AS r(s, e);
        IF v_got < v_asked THEN
            -- Which serials are not there, as the refusal names them (the gaps between the pieces found).
            SELECT jsonb_agg(jsonb_build_array(g.s, g.e) ORDER BY g.s) INTO v_missing FROM (
                SELECT coalesce(lag(x.pe) OVER w + 1, x.rs) AS s, x.ps - 1 AS e FROM (
                    SELECT r.s AS rs, p.ps, p.pe FROM unnest(p_starts, p_ends) AS r(s, e)
                      JOIN unnest(v_ps, v_pe) AS p(ps, pe) ON p.ps BETWEEN r.s AND r.e
                    UNION ALL SELECT r.s, r.e + 1, NULL FROM unnest(p_starts, p_ends) AS r(s, e)
                ) x WINDOW w AS (PARTITION BY x.rs ORDER BY x.ps)
            ) g WHERE g.s <= g.e;
            refusal := jsonb_build_object('code', 'blocks_not_available', 'missing', v_missing);
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    v_n := coalesce(array_length(v_id, 1), 0);
    IF v_n = 0 THEN
        RETURN;
    END IF;

    -- The target's islands: the pieces joined with the target's blocks of the same batch next to them
    -- (the block just below a piece, the block just above), so that a movement never fragments.
    WITH p AS (
        SELECT * FROM unnest(v_batch, v_ct, v_ps, v_pe) AS p(batch, ct, s, e)
    ), nb AS (
        SELECT DISTINCT h.id, h.batch_id, h.credit_type_id, h.serial_start, h.serial_end
          FROM p CROSS JOIN LATERAL (
              (SELECT h.* FROM holding h
                WHERE h.account_id = p_target_account AND h.credit_type_id = p.ct AND h.status = p_target_status
                  AND h.serial_start < p.s ORDER BY h.serial_start DESC LIMIT 1)
              UNION ALL
              (SELECT h.* FROM holding h
                WHERE h.account_id = p_target_account AND h.credit_type_id = p.ct AND h.status = p_target_status
                  AND h.serial_start = p.e + 1 LIMIT 1)
          ) h
         WHERE h.batch_id = p.batch AND h.pledge_id IS NOT DISTINCT FROM p_target_pledge
           AND (h.serial_end = p.s - 1 OR h.serial_start = p.e + 1)
    ), m AS (
        SELECT NULL::bigint AS tid, p.batch, p.ct, p.s, p.e FROM p
        UNION ALL
        SELECT nb.id, nb.batch_id, nb.credit_type_id, nb.serial_start, nb.serial_end FROM nb
    ), w AS (
        SELECT m.*, CASE WHEN m.s = lag(m.e) OVER o + 1 AND m.batch = lag(m.batch) OVER o
                          AND m.ct = lag(m.ct) OVER o THEN 0 ELSE 1 END AS starts
          FROM m WINDOW o AS (ORDER BY m.ct, m.s)
    ), g AS (
        SELECT w.*, sum(w.starts) OVER (ORDER BY w.ct, w.s) AS island FROM w
    ), k AS (
        SELECT g.*, min(g.tid) OVER i AS keep, min(g.s) OVER i AS lo, max(g.e) OVER i AS hi,
               row_number() OVER (i ORDER BY g.s) AS n
          FROM g WINDOW i AS (PARTITION BY g.island)
    )
    SELECT array_agg(k.ct ORDER BY k.island) FILTER (WHERE k.n = 1),
           array_agg(k.batch ORDER BY k.island) FILTER (WHERE k.n = 1),
           array_agg(k.lo ORDER BY k.island) FILTER (WHERE k.n = 1),
           array_agg(k.hi ORDER BY k.island) FILTER (WHERE k.n = 1),
           array_agg(k.keep ORDER BY k.island) FILTER (WHERE k.n = 1),
           array_agg(k.tid) FILTER (WHERE k.tid <> k.keep)
      INTO t_ct, t_batch, t_s, t_e, t_keep, d_id
      FROM k;
    d_id := coalesce(d_id, '{{}}');

    -- The source's remnants: each touched block keeps its row for its first remnant; a block with
    -- none frees its row.
    kept := false;
    FOR i IN 1 .. v_n LOOP
        IF i = 1 OR v_id[i] <> v_id[i - 1] THEN
            v_cur := v_bs[i]; kept := false;
        END IF;
        IF v_ps[i] > v_cur THEN
            IF kept THEN
                n_ct := n_ct || v_ct[i]; n_batch := n_batch || v_batch[i];
                n_s := n_s || v_cur; n_e := n_e || (v_ps[i] - 1); n_to := n_to || false;
            ELSE
                u_id := u_id || v_id[i]; u_s := u_s || v_cur; u_e := u_e || (v_ps[i] - 1); u_to := u_to || false;
                kept := true;
            END IF;
        END IF;
        v_cur := v_pe[i] + 1;
        IF i = v_n OR v_id[i + 1] <> v_id[i] THEN
            IF v_cur <= v_be[i] THEN
                IF kept THEN
                    n_ct := n_ct || v_ct[i]; n_batch := n_batch || v_batch[i];
                    n_s := n_s || v_cur; n_e := n_e || v_be[i]; n_to := n_to || false;
                ELSE
                    u_id := u_id || v_id[i]; u_s := u_s || v_cur; u_e := u_e || v_be[i]; u_to := u_to || false;
                    kept := true;
                END IF;
            END IF;
            IF NOT kept THEN
                f_id := f_id || v_id[i]; f_batch := f_batch || v_batch[i];
            END IF;
        END IF;
    END LOOP;

    -- Each island keeps its target row, or takes a freed source row of its batch, or is a new row.
    FOR i IN 1 .. coalesce(array_length(t_ct, 1), 0) LOOP
        IF t_keep[i] IS NOT NULL THEN
            u_id := u_id || t_keep[i]; u_s := u_s || t_s[i]; u_e := u_e || t_e[i]; u_to := u_to || true;
            CONTINUE;
        END IF;
        j := array_position(f_batch, t_batch[i]);
        IF j IS NOT NULL THEN
            u_id := u_id || f_id[j]; u_s := u_s || t_s[i]; u_e := u_e || t_e[i]; u_to := u_to || true;
            f_id := f_id[:j - 1] || f_id[j + 1:]; f_batch := f_batch[:j - 1] || f_batch[j + 1:];
        ELSE
            n_ct := n_ct || t_ct[i]; n_batch := n_batch || t_batch[i];
            n_s := n_s || t_s[i]; n_e := n_e || t_e[i]; n_to := n_to || true;
        END IF;
    END LOOP;
    d_id := d_id || f_id;

    -- Shrinking rows come first in the update, so that growing ones meet no live overlap to re-check;
    -- overlaps and conservation are checked at commit on the final rows.
    IF array_length(d_id, 1) > 0 THEN
        DELETE FROM holding WHERE id = ANY(d_id);
    END IF;
    IF array_length(u_id, 1) > 0 THEN
        UPDATE holding h SET serial_start = u.s, serial_end = u.e,
               account_id = CASE WHEN u.t THEN p_target_account ELSE p_source_account END,
               status = CASE WHEN u.t THEN p_target_status ELSE p_source_status END,
               pledge_id = CASE WHEN u.t THEN p_target_pledge ELSE p_source_pledge END
          FROM unnest(u_id, u_s, u_e, u_to) AS u(id, s, e, t)
         WHERE h.id = u.id;
    END IF;
    IF array_length(n_ct, 1) > 0 THEN
        INSERT INTO holding (credit_type_id, batch_id, serial_start, serial_end, account_id, status, pledge_id)
        SELECT n.ct, n.batch, n.s, n.e,
               CASE WHEN n.t THEN p_target_account ELSE p_source_account END,
               CASE WHEN n.t THEN p_target_status ELSE p_source_status END,
               CASE WHEN n.t THEN p_target_pledge ELSE p_source_pledge END
          FROM unnest(n_ct, n_batch, n_s, n_e, n_to) AS n(ct, batch, s, e, t);
    END IF;

    -- One event per piece on the source account's chain, each hashed onto the one before; the head moves.
    FOR i IN 1 .. v_n LOOP
        e_prev := e_prev || v_head;
        v_head := registry_event_hash(v_head, p_source_account, v_seq + i, p_kind, v_ct[i], v_batch[i], v_ps[i],
                                      v_pe[i], p_source_account, p_source_status, p_source_pledge,
                                      p_target_account, p_target_status, p_target_pledge, p_actor_role,
                                      p_actor_party, p_actor_key, p_operator, p_on_behalf, p_request_id,
                                      p_instruction, p_reason, p_at);
        e_hash := e_hash || v_head;
    END LOOP;
    WITH appended AS (
    INSERT INTO audit_event (account_id, seq, kind, credit_type_id, batch_id, serial_start, serial_end,
                             from_account_id, from_status, from_pledge_id, to_account_id, to_status, to_pledge_id,
                             actor_role, actor_party_id, actor_key_id, operator, on_behalf_of, request_id,
                             instruction_id, reason, occurred_at, prev_hash, hash)
    SELECT p_source_account, v_seq + e.k, p_kind, e.ct, e.batch, e.s, e.e,
           p_source_account, p_source_status, p_source_pledge, p_target_account, p_target_status, p_target_pledge,
           p_actor_role, p_actor_party, p_actor_key, p_operator, p_on_behalf, p_request_id, p_instruction,
           p_reason, p_at, e.prev, e.hash
      FROM unnest(v_ct, v_batch, v_ps, v_pe, e_prev, e_hash) WITH ORDINALITY AS e(ct, batch, s, e, prev, hash, k)
    )  -- the events and the chain's new head in one statement
    UPDATE account SET audit_seq = v_seq + v_n, audit_head = v_head WHERE id = p_source_account;
    -- The pieces moved, returned as rows without a query (a movement of one credit type knows its code).
    IF p_credit_type_code IS NULL THEN
        SELECT array_agg(t.code::text ORDER BY e.k) INTO v_codes
          FROM unnest(v_ct) WITH ORDINALITY AS e(ct, k) JOIN credit_type t ON t.id = e.ct;
    END IF;
    refusal := NULL;
    FOR i IN 1 .. v_n LOOP
        credit_type := coalesce(p_credit_type_code, v_codes[i]);
        batch_id := v_batch[i]; serial_start := v_ps[i]; serial_end := v_pe[i];
        RETURN NEXT;
    END LOOP;
END $$;
"""


def _move_before() -> str:
    """0014's registry_move, as it was (the migration is frozen: its text is history)."""
    path = next(Path(__file__).parent.glob("*_fewer_block_writes.py"))
    spec = importlib.util.spec_from_file_location("fewer_block_writes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.UPGRADE
    return text


def _run(sql: str) -> None:
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(SPAN)
    _run(MOVE)


def downgrade() -> None:
    _run(_move_before())
    _run(SPAN_BEFORE)
