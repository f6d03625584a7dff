"""Every movement of units in one call: the locks, the blocks, the trail and its hashes, in PostgreSQL.

Revision ID: 0012_move_in_one_call
Revises: 0011_links_per_statement
Create Date: 2026-12-02 00:00

`registry_move` does what registry/ledger/service.py did in six statements and Python between them —
lock the accounts (in id order, FOR NO KEY UPDATE), take the units (lowest serials first, or the named
ranges) out of the source state, put them in the target state, split and join blocks, append one audit
event per block moved to the source account's chain with its hash, move the chain's head — in one round
trip. Each statement inside reads with a fresh snapshot, so the blocks are read after the locks are held,
as before. A refusal (unknown or closed account, not enough units, named serials not held) is found before
anything is written and answered as a row with `refusal` set, not raised: the caller's transaction stays
usable, as it did when Python refused before writing.

`registry_event_hash` is the canonical form of an event and its hash (registry/audit/chain.py builds the
same bytes in Python; tests/test_audit_sql.py holds the two together), used by the writer here and by the
verifier.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_move_in_one_call"
down_revision: str | None = "0011_links_per_statement"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The canonical order of the hashed fields (registry/audit/chain.py HASHED_FIELDS, frozen here: changing it
# needs a migration that re-anchors every chain), with each field's SQL type and how it prints.
FIELDS = [
    ("account_id", "uuid", "json"), ("seq", "bigint", "int"), ("kind", "text", "json"),
    ("credit_type_id", "smallint", "int"), ("batch_id", "uuid", "json"), ("serial_start", "bigint", "int"),
    ("serial_end", "bigint", "int"), ("from_account_id", "uuid", "json"), ("from_status", "text", "json"),
    ("from_pledge_id", "uuid", "json"), ("to_account_id", "uuid", "json"), ("to_status", "text", "json"),
    ("to_pledge_id", "uuid", "json"), ("actor_role", "text", "json"), ("actor_party_id", "uuid", "json"),
    ("actor_key_id", "uuid", "json"), ("operator", "text", "json"), ("on_behalf_of", "uuid", "json"),
    ("request_id", "text", "json"), ("instruction_id", "uuid", "json"), ("reason", "text", "json"),
    ("occurred_at", "timestamptz", "time"),
]  # fmt: skip


def _printed(name: str, how: str) -> str:
    if how == "int":
        return f"coalesce(p_{name}::text, 'null')"
    if how == "time":
        return f"coalesce((extract(epoch FROM p_{name}) * 1000000)::bigint::text, 'null')"
    return f"coalesce(to_json(p_{name})::text, 'null')"


HASH_ARGS = ", ".join(f"p_{n} {t}" for n, t, _ in FIELDS)
CANONICAL = " || ',' || ".join(_printed(n, h) for n, _, h in FIELDS)

UPGRADE = f"""
CREATE FUNCTION registry_event_hash(p_prev bytea, {HASH_ARGS}) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(p_prev || convert_to('[' || {CANONICAL} || ']', 'UTF8'))
$$;

CREATE FUNCTION registry_move(
    p_kind text,
    p_source_account uuid, p_source_status text, p_source_pledge uuid,
    p_target_account uuid, p_target_status text, p_target_pledge uuid,
    p_credit_type_code text, p_quantity bigint, p_starts bigint[], p_ends bigint[], p_all boolean,
    p_actor_role text, p_actor_party uuid, p_actor_key uuid, p_operator text, p_on_behalf uuid,
    p_request_id text, p_instruction uuid, p_reason text, p_at timestamptz,
    p_require_active uuid[]
) RETURNS TABLE (credit_type text, batch_id uuid, serial_start bigint, serial_end bigint, refusal jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    -- The pieces, in (credit type, serial) order: the block each comes from and the part taken.
    v_id bigint[]; v_batch uuid[]; v_ct smallint[]; v_bs bigint[]; v_be bigint[]; v_ps bigint[]; v_pe bigint[];
    v_seq bigint; v_head bytea; v_got bigint; v_asked bigint; v_missing jsonb; v_bad uuid; v_n int; r record;
    p_credit_type smallint;
BEGIN
    IF p_credit_type_code IS NOT NULL THEN
        SELECT c.id INTO p_credit_type FROM credit_type c WHERE c.code = p_credit_type_code;
        IF p_credit_type IS NULL THEN
            refusal := jsonb_build_object('code', 'unknown_credit_type');
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    -- The accounts, in id order: two movements never wait on each other in a cycle.
    PERFORM 1 FROM account WHERE id IN (p_source_account, p_target_account) ORDER BY id FOR NO KEY UPDATE;
    SELECT x INTO v_bad FROM unnest(ARRAY[p_source_account, p_target_account]) x
     WHERE NOT EXISTS (SELECT 1 FROM account WHERE id = x) LIMIT 1;
    IF v_bad IS NOT NULL THEN
        refusal := jsonb_build_object('code', 'account_not_found', 'account_id', v_bad);
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT id INTO v_bad FROM account WHERE id = ANY(p_require_active) AND status <> 'active' LIMIT 1;
    IF v_bad IS NOT NULL THEN
        refusal := jsonb_build_object('code', 'account_closed', 'account_id', v_bad);
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

    -- Each touched block keeps its row for its first piece (an UPDATE, checked as a transition); its other
    -- pieces and the parts not taken become new rows. Overlaps and conservation are checked at commit.
    UPDATE holding h SET serial_start = f.ps, serial_end = f.pe,
           account_id = p_target_account, status = p_target_status, pledge_id = p_target_pledge
      FROM (SELECT DISTINCT ON (p.id) p.id, p.ps, p.pe FROM unnest(v_id, v_ps, v_pe) AS p(id, ps, pe)
             ORDER BY p.id, p.ps) f
     WHERE h.id = f.id;
    INSERT INTO holding (credit_type_id, batch_id, serial_start, serial_end, account_id, status, pledge_id)
    SELECT x.ct, x.batch, x.s, x.e, x.account_id, x.status, x.pledge_id FROM (
        SELECT p.ct, p.batch, p.ps AS s, p.pe AS e, p_target_account AS account_id, p_target_status AS status,
               p_target_pledge AS pledge_id,
               row_number() OVER (PARTITION BY p.id ORDER BY p.ps) AS n
          FROM unnest(v_id, v_batch, v_ct, v_ps, v_pe) AS p(id, batch, ct, ps, pe)
    ) x WHERE x.n > 1
    UNION ALL
    SELECT g.ct, g.batch, g.s, g.e, p_source_account, p_source_status, p_source_pledge FROM (
        SELECT p.ct, p.batch, coalesce(lag(p.pe) OVER w + 1, p.bs) AS s, p.ps - 1 AS e
          FROM unnest(v_id, v_batch, v_ct, v_bs, v_ps, v_pe) AS p(id, batch, ct, bs, ps, pe)
        WINDOW w AS (PARTITION BY p.id ORDER BY p.ps)
        UNION ALL
        SELECT min(p.ct), min(p.batch::text)::uuid, max(p.pe) + 1, max(p.be)
          FROM unnest(v_id, v_batch, v_ct, v_be, v_pe) AS p(id, batch, ct, be, pe) GROUP BY p.id
    ) g WHERE g.s <= g.e;

    -- Join the target's adjacent blocks of one batch around what arrived (a transfer must not fragment).
    FOR r IN SELECT p.ct, min(p.ps) AS lo, max(p.pe) AS hi FROM unnest(v_ct, v_ps, v_pe) AS p(ct, ps, pe)
              GROUP BY p.ct LOOP
        WITH cand AS (
            SELECT h.id, h.serial_start, h.serial_end,
                   CASE WHEN h.serial_start = lag(h.serial_end) OVER w + 1 AND h.batch_id = lag(h.batch_id) OVER w
                        THEN 0 ELSE 1 END AS starts_island
              FROM holding h
             WHERE h.account_id = p_target_account AND h.credit_type_id = r.ct AND h.status = p_target_status
               AND h.pledge_id IS NOT DISTINCT FROM p_target_pledge
               AND h.serial_end >= r.lo - 1 AND h.serial_start <= r.hi + 1
            WINDOW w AS (ORDER BY h.serial_start)
        ), numbered AS (
            SELECT c.id, c.serial_start, c.serial_end, sum(c.starts_island) OVER (ORDER BY c.serial_start) AS island
              FROM cand c
        ), islands AS (
            SELECT array_agg(n.id ORDER BY n.serial_start) AS ids, max(n.serial_end) AS last
              FROM numbered n GROUP BY n.island HAVING count(*) > 1
        ), absorbed AS (
            DELETE FROM holding WHERE id IN (SELECT unnest(i.ids[2:]) FROM islands i) RETURNING id
        )
        UPDATE holding h SET serial_end = i.last FROM islands i WHERE h.id = i.ids[1];
    END LOOP;

    -- One event per piece on the source account's chain, each hashed onto the one before; the head moves.
    SELECT a.audit_seq, coalesce(a.audit_head, '\\x{"00" * 32}'::bytea) INTO v_seq, v_head
      FROM account a WHERE a.id = p_source_account;
    FOR i IN 1 .. v_n LOOP
        v_seq := v_seq + 1;
        INSERT INTO audit_event (account_id, seq, kind, credit_type_id, batch_id, serial_start, serial_end,
                                 from_account_id, from_status, from_pledge_id, to_account_id, to_status, to_pledge_id,
                                 actor_role, actor_party_id, actor_key_id, operator, on_behalf_of, request_id,
                                 instruction_id, reason, occurred_at, prev_hash, hash)
        VALUES (p_source_account, v_seq, p_kind, v_ct[i], v_batch[i], v_ps[i], v_pe[i],
                p_source_account, p_source_status, p_source_pledge, p_target_account, p_target_status, p_target_pledge,
                p_actor_role, p_actor_party, p_actor_key, p_operator, p_on_behalf, p_request_id, p_instruction,
                p_reason, p_at, v_head,
                registry_event_hash(v_head, p_source_account, v_seq, p_kind, v_ct[i], v_batch[i], v_ps[i], v_pe[i],
                                    p_source_account, p_source_status, p_source_pledge, p_target_account,
                                    p_target_status, p_target_pledge, p_actor_role, p_actor_party, p_actor_key,
                                    p_operator, p_on_behalf, p_request_id, p_instruction, p_reason, p_at))
        RETURNING hash INTO v_head;
        credit_type := (SELECT c.code FROM credit_type c WHERE c.id = v_ct[i]);
        batch_id := v_batch[i]; serial_start := v_ps[i]; serial_end := v_pe[i];
        refusal := NULL;
        RETURN NEXT;
    END LOOP;
    UPDATE account SET audit_seq = v_seq, audit_head = v_head WHERE id = p_source_account;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'registry_app') THEN
        GRANT EXECUTE ON FUNCTION registry_event_hash(bytea, {", ".join(t for _, t, _ in FIELDS)}) TO registry_app;
        GRANT EXECUTE ON FUNCTION registry_move(text, uuid, text, uuid, uuid, text, uuid, text, bigint, bigint[],
            bigint[], boolean, text, uuid, uuid, text, uuid, text, uuid, text, timestamptz, uuid[]) TO registry_app;
    END IF;
END $$;
"""

DOWNGRADE = f"""
DROP FUNCTION registry_move(text, uuid, text, uuid, uuid, text, uuid, text, bigint, bigint[], bigint[], boolean,
    text, uuid, uuid, text, uuid, text, uuid, text, timestamptz, uuid[]);
DROP FUNCTION registry_event_hash(bytea, {", ".join(t for _, t, _ in FIELDS)});
"""


def _run(sql: str) -> None:
    op.get_bind().connection.dbapi_connection.cursor().execute(sql)  # type: ignore[union-attr]


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
