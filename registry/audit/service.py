"""Writing the trail (in the caller's transaction) and reading it back: unit history and verification."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from sqlalchemy import Engine, text
from sqlmodel import Session

from registry import authz
from registry.audit.chain import (
    DECISION_FIELDS,
    GENESIS,
    HASH_SQL,
    HASHED_FIELDS,
    Canonical,
    digest_of_heads,
    hash_sql,
    link,
)
from registry.audit.models import EventKind
from registry.copy import CopyIn, CopyText
from registry.db import run
from registry.errors import NotFound
from registry.principal import Actor, Principal

_COLUMNS = (*HASHED_FIELDS, "prev_hash", "hash")


class ChainHead(Protocol):
    """Where an account's chain stands: the account (locked by the caller), its last seq and hash."""

    @property
    def id(self) -> UUID: ...
    @property
    def audit_seq(self) -> int: ...
    @property
    def audit_head(self) -> bytes | None: ...


_TYPES = {
    "account_id": "uuid",
    "seq": "bigint",
    "credit_type_id": "smallint",
    "batch_id": "uuid",
    "serial_start": "bigint",
    "serial_end": "bigint",
    "from_account_id": "uuid",
    "from_pledge_id": "uuid",
    "to_account_id": "uuid",
    "to_pledge_id": "uuid",
    "actor_party_id": "uuid",
    "actor_key_id": "uuid",
    "on_behalf_of": "uuid",
    "instruction_id": "uuid",
    "occurred_at": "timestamptz",
    "prev_hash": "bytea",
    "hash": "bytea",
}
# All of an operation's events and the move of the chain head, in one round trip. Rows keep their order,
# so each event's link check (trigger audit_event_links) sees the event before it.
_APPEND = text(
    "WITH head AS (UPDATE account SET audit_seq = :head_seq, audit_head = :head_hash WHERE id = :chain) "
    f"INSERT INTO audit_event ({', '.join(_COLUMNS)}) "
    "SELECT * FROM unnest(" + ", ".join(f"CAST(:{c} AS {_TYPES.get(c, 'text')}[])" for c in _COLUMNS) + ")"
)


class Change(NamedTuple):
    """One block's move, before -> after. `None` on the from side is an issuance. (A named tuple: as
    immutable as a frozen dataclass and ~3 times cheaper to make; a settlement batch makes ~30,000.)"""

    credit_type_id: int
    batch_id: UUID
    serial_start: int
    serial_end: int
    to_account_id: UUID
    to_status: str
    to_pledge_id: UUID | None = None
    from_account_id: UUID | None = None
    from_status: str | None = None
    from_pledge_id: UUID | None = None


def record(
    session: Session,
    actor: Actor,
    chain: ChainHead,
    kind: EventKind,
    changes: Sequence[Change],
    *,
    reason: str | None = None,
) -> None:
    """Append one event per change to the chain of `chain` (an account the caller holds locked), and move
    the account's head. Same transaction as the change itself: both commit or neither does."""
    record_many(session, actor, kind, [(chain, change, reason) for change in changes])


# Many chains at once (a settlement batch): every event in one COPY (rows land in the order given, and the
# trail's link check runs once over them, as after any insert), every head in one statement.
_COPY_EVENTS = f"COPY audit_event ({', '.join(_COLUMNS)}) FROM STDIN"
_HEADS = (
    "UPDATE account a SET audit_seq = v.seq, audit_head = v.head "
    "FROM unnest(%(ids)s::uuid[], %(seqs)s::bigint[], %(heads)s::bytea[]) AS v(id, seq, head) "
    "WHERE a.id = v.id"
)


def record_many(
    session: Session,
    actor: Actor,
    kind: EventKind,
    events: Sequence[tuple[ChainHead, Change, str | None]],
) -> None:
    """Events in the order they happened, each (the locked account whose chain it extends, the change, its
    reason): each linked onto its chain, and every chain's head moved. Rows are written in that order, so
    that event ids keep the order of the changes across chains (the replay in `registry check` reads the
    trail so). One chain takes one round trip (the head's move and the events in one statement); several
    take two."""
    if not events:
        return
    if len({chain.id for chain, _, _ in events}) > 1:
        _record_across_chains(session, actor, kind, events)
        return
    heads: dict[UUID, tuple[int, bytes]] = {}
    rows: list[dict[str, Any]] = []
    principal = actor.principal
    for chain, change, reason in events:
        seq, prev = heads.get(chain.id, (chain.audit_seq, chain.audit_head or GENESIS))
        seq += 1
        event: dict[str, Any] = {
            "account_id": chain.id,
            "seq": seq,
            "kind": kind.value,
            "credit_type_id": change.credit_type_id,
            "batch_id": change.batch_id,
            "serial_start": change.serial_start,
            "serial_end": change.serial_end,
            "from_account_id": change.from_account_id,
            "from_status": change.from_status,
            "from_pledge_id": change.from_pledge_id,
            "to_account_id": change.to_account_id,
            "to_status": change.to_status,
            "to_pledge_id": change.to_pledge_id,
            "actor_role": principal.role.value,
            "actor_party_id": principal.party_id,
            "actor_key_id": principal.key_id,
            "operator": principal.operator,
            "on_behalf_of": actor.on_behalf_of,
            "request_id": actor.request_id,
            "instruction_id": actor.instruction_id,
            "reason": reason,
            "occurred_at": actor.at,
            "prev_hash": prev,
        }
        event["hash"] = link(prev, event)
        heads[chain.id] = (seq, event["hash"])
        rows.append(event)
    ((chain_id, (seq, head)),) = heads.items()
    params: dict[str, Any] = {c: [row[c] for row in rows] for c in _COLUMNS}
    session.execute(_APPEND, {**params, "head_seq": seq, "head_hash": head, "chain": chain_id})


def _record_across_chains(
    session: Session, actor: Actor, kind: EventKind, events: Sequence[tuple[ChainHead, Change, str | None]]
) -> None:
    """record_many's rows for many chains, in one COPY."""
    stream = EventStream(session, actor, kind)
    try:
        for chain, change, reason in events:
            stream.add(chain, change, reason)
    except BaseException:
        stream.abort()
        raise
    stream.close()


class EventStream:
    """record_many for many chains, fed one event at a time as the caller makes them: each row hashed
    (Canonical prints what canonical() prints, byte for byte) and printed once as COPY text, and sent in
    chunks, so that PostgreSQL inserts the events while the caller works out the next ones. `close` ends
    the COPY (the link check runs over all of its rows) and moves every chain's head; `abort` drops the
    events (the COPY fails: the caller rolls back to a savepoint, or the whole transaction). Nothing else
    may use the session's connection in between."""

    def __init__(self, session: Session, actor: Actor, kind: EventKind) -> None:
        self._session = session
        self._canonical = Canonical().value
        self._cell = cell = CopyText().value
        # what every event of the stream shares, printed once (the hashed form and the COPY cells)
        self._kind = kind.value
        self._kind_canonical, self._kind_cell = self._canonical(kind.value), cell(kind.value)
        self._actor: Actor | None = None
        self.act(actor)
        self.heads: dict[UUID, tuple[int, bytes]] = {}
        self._copy: CopyIn | None = None

    def act(self, actor: Actor) -> None:
        """The events from here on are this actor's (transfers done together: each request's own)."""
        if actor is self._actor:
            return
        self._actor = actor
        principal = actor.principal
        actor_fields = (principal.role.value, principal.party_id, principal.key_id, principal.operator,
                        actor.on_behalf_of, actor.request_id, actor.instruction_id)  # fmt: skip
        self._actor_canonical = ",".join(map(self._canonical, actor_fields))
        self._actor_cells = "\t".join(map(self._cell, actor_fields))
        self._at_canonical, self._at_cell = self._canonical(actor.at), self._cell(actor.at)
        self._last_key: tuple[Any, ...] = (object(),) * 8  # nothing printed before is this actor's
        self._last_printed: tuple[str, ...] = ()

    def add(self, chain: ChainHead, c: Change, reason: str | None) -> None:
        if self._copy is None:
            self._copy = CopyIn(self._session, _COPY_EVENTS)
        heads = self.heads
        seq, prev = heads.get(chain.id) or (chain.audit_seq, chain.audit_head or GENESIS)
        seq += 1
        # The parts an event shares with the one before it (the pieces of one transfer: the same chain,
        # accounts, states and reason), printed once for both.
        key = (chain.id, c.from_account_id, c.from_status, c.from_pledge_id, c.to_account_id, c.to_status,
               c.to_pledge_id, reason)  # fmt: skip
        last = self._last_key
        if not (last[0] is key[0] and last[1] is key[1] and last[2] is key[2] and last[3] is key[3]
                and last[4] is key[4] and last[5] is key[5] and last[6] is key[6] and last[7] is key[7]):  # fmt: skip
            canonical, cell = self._canonical, self._cell
            self._last_key = key
            self._last_printed = (
                canonical(chain.id), cell(chain.id),
                ",".join(map(canonical, key[1:7])), "\t".join(map(cell, key[1:7])),
                f"{self._actor_canonical},{canonical(reason)},{self._at_canonical}",
                f"{self._actor_cells}\t{cell(reason)}\t{self._at_cell}",
            )  # fmt: skip
        chain_canonical, chain_cell, parties_canonical, parties_cell, tail_canonical, tail_cell = (
            self._last_printed
        )
        ct, start, end = c.credit_type_id, c.serial_start, c.serial_end
        body = (f"[{chain_canonical},{seq},{self._kind_canonical},{ct},{self._canonical(c.batch_id)},{start},{end},"
                f"{parties_canonical},{tail_canonical}]")  # fmt: skip
        digest = sha256(prev + body.encode()).digest()
        heads[chain.id] = (seq, digest)
        self._copy.write(
            f"{chain_cell}\t{seq}\t{self._kind_cell}\t{ct}\t{self._cell(c.batch_id)}\t{start}\t{end}\t"
            f"{parties_cell}\t{tail_cell}\t\\\\x{prev.hex()}\t\\\\x{digest.hex()}"
        )

    def close(self) -> None:
        if self._copy is None:
            return
        self._copy.close()
        self._copy = None
        heads = self.heads
        run(self._session, _HEADS, {"ids": list(heads), "seqs": [h[0] for h in heads.values()],
                                    "heads": [h[1] for h in heads.values()]})  # fmt: skip

    def abort(self) -> None:
        if self._copy is not None:
            self._copy.abort()
            self._copy = None


def unit_history(
    session: Session, principal: Principal, credit_type: str, serial: int, *, after_id: int | None, limit: int
) -> list[Any]:
    """Every event that touched the unit, oldest first: the exchange's and auditors' to read (a unit's
    history names every holder it had)."""
    authz.require_role(principal, *authz.READERS_OF_EVERYTHING)
    credit_type_id = session.execute(
        text("SELECT id FROM credit_type WHERE code = :c"), {"c": credit_type}
    ).scalar_one_or_none()
    if credit_type_id is None:
        raise NotFound("credit type", credit_type, field="credit_type")
    return list(
        session.execute(
            text("""
                SELECT e.id, e.kind, e.occurred_at, e.batch_id, e.serial_start, e.serial_end,
                       e.from_account_id, fa.number AS from_account_number, fa.party_id AS from_party_id,
                       e.from_status, e.from_pledge_id,
                       e.to_account_id, ta.number AS to_account_number, ta.party_id AS to_party_id,
                       e.to_status, e.to_pledge_id,
                       e.actor_role, e.actor_party_id, e.operator, e.on_behalf_of, e.request_id, e.instruction_id,
                       e.reason, e.account_id AS chain_account_id, e.seq, e.hash
                  FROM audit_event e
                  LEFT JOIN account fa ON fa.id = e.from_account_id
                  LEFT JOIN account ta ON ta.id = e.to_account_id
                 WHERE registry_box(e.credit_type_id, e.serial_start, e.serial_end)
                       && registry_box(CAST(:ct AS smallint), :serial, :serial) AND e.id > :after
                 ORDER BY e.id LIMIT :limit"""),
            {"ct": credit_type_id, "serial": serial, "after": after_id or 0, "limit": limit},
        ).all()
    )


@dataclass(frozen=True, slots=True)
class BadEvent:
    id: int | None  # None when the problem is an event that is missing, not one that is there
    chain_id: UUID  # the account (unit trail) or the pledge (decision trail) whose chain it is
    seq: int
    problem: str
    trail: str = "units"

    @property
    def account_id(self) -> UUID | None:
        return self.chain_id if self.trail == "units" else None

    @property
    def pledge_id(self) -> UUID | None:
        return self.chain_id if self.trail == "decisions" else None

    def describe_chain(self) -> str:
        return f"account {self.chain_id}" if self.trail == "units" else f"decisions of pledge {self.chain_id}"


@dataclass(frozen=True, slots=True)
class Verification:
    events: int
    chains: int
    head_hash: str
    first_bad_event: BadEvent | None
    bad_events: int

    @property
    def ok(self) -> bool:
        return self.first_bad_event is None


@dataclass(frozen=True, slots=True)
class _Trail:
    """A hash-chained table: its chains, how its hash is recomputed, and where each chain's head is kept."""

    name: str
    table: str
    chain: str  # the column that names a chain
    hash_sql: str
    ends_sql: str  # per chain: id, head_seq, head, last_seq, last_hash, events


_TRAILS = (
    _Trail(
        "units",
        "audit_event",
        "account_id",
        HASH_SQL,
        """
        SELECT a.id, a.audit_seq AS head_seq, a.audit_head AS head, e.seq AS last_seq, e.hash AS last_hash,
               e.events
          FROM account a
          LEFT JOIN (SELECT DISTINCT ON (account_id) account_id, seq, hash,
                            count(*) OVER (PARTITION BY account_id) AS events
                       FROM audit_event ORDER BY account_id, seq DESC) e ON e.account_id = a.id
         WHERE a.audit_seq > 0 OR e.account_id IS NOT NULL""",
    ),
    _Trail(
        "decisions",
        "pledge_event",
        "pledge_id",
        hash_sql(DECISION_FIELDS),
        """
        SELECT coalesce(c.pledge_id, e.pledge_id) AS id, coalesce(c.seq, 0) AS head_seq, c.head,
               e.seq AS last_seq, e.hash AS last_hash, e.events
          FROM pledge_chain c
          FULL JOIN (SELECT DISTINCT ON (pledge_id) pledge_id, seq, hash,
                            count(*) OVER (PARTITION BY pledge_id) AS events
                       FROM pledge_event ORDER BY pledge_id, seq DESC) e ON e.pledge_id = c.pledge_id""",
    ),
)


def _verify_trail(conn: Any, trail: _Trail) -> tuple[list[BadEvent], list[tuple[UUID, int, bytes]], int]:
    # Each hash is recomputed as the table is scanned, in table order (`OFFSET 0` keeps it there), and
    # only what the links need is then sorted into chain order. Hashed in the window instead, after
    # walking the (chain, seq) index, the same 2,000,000 events of bench.check_bench took ~30 s, not ~9.
    rows = conn.execute(
        text(f"""
            WITH linked AS (
                SELECT id, chain_id, seq, prev_hash, hash, altered,
                       lag(seq) OVER w AS prior_seq, lag(hash) OVER w AS prior_hash
                  FROM (SELECT id, {trail.chain} AS chain_id, seq, prev_hash, hash,
                               {trail.hash_sql} <> hash AS altered
                          FROM {trail.table} OFFSET 0) e
                WINDOW w AS (PARTITION BY chain_id ORDER BY seq)
            ), judged AS (
                SELECT id, chain_id, seq,
                       CASE WHEN seq <> coalesce(prior_seq, 0) + 1
                                THEN 'sequence gap: expected ' || (coalesce(prior_seq, 0) + 1)
                                     || ', found ' || seq
                            WHEN prev_hash <> coalesce(prior_hash, :genesis)
                                THEN 'prev_hash does not match the previous event''s hash'
                            WHEN altered THEN 'content does not match its hash'
                       END AS problem
                  FROM linked
            )
            SELECT DISTINCT ON (chain_id) id, chain_id, seq, problem
              FROM judged WHERE problem IS NOT NULL ORDER BY chain_id, seq"""),
        {"genesis": GENESIS},
    ).all()
    bad = [BadEvent(r.id, r.chain_id, r.seq, r.problem, trail.name) for r in rows]
    broken = {b.chain_id for b in bad}
    heads: list[tuple[UUID, int, bytes]] = []
    events = 0
    for end in conn.execute(text(trail.ends_sql)).all():
        if end.last_seq is None:
            bad.append(BadEvent(None, end.id, end.head_seq, "the chain has no events", trail.name))
            continue
        events += end.events
        heads.append((end.id, end.last_seq, bytes(end.last_hash)))
        moved = end.head_seq != end.last_seq or bytes(end.head or b"") != bytes(end.last_hash)
        if moved and end.id not in broken:
            problem = "the chain does not end at its recorded head (events removed?)"
            bad.append(BadEvent(None, end.id, end.last_seq, problem, trail.name))
    return bad, heads, events


def verify_chains(engine: Engine) -> Verification:
    """Recompute every chain — each account's unit trail and each pledge's decision trail — from its
    genesis, and compare each chain's end with its recorded head.

    One set-based pass per trail in PostgreSQL (each event's hash recomputed from its canonical form, its
    link and sequence checked against the event before it in its chain), all in one REPEATABLE READ
    snapshot so that writes going on meanwhile are not mistaken for breaks. Names the earliest (lowest id)
    bad event, and the first break of each chain: what follows a break is suspect anyway."""
    bad: list[BadEvent] = []
    heads: list[tuple[UUID, int, bytes]] = []
    events = 0
    with engine.connect() as plain:
        conn = plain.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text("SET LOCAL work_mem = '256MB'"))  # the sort into chain order, in memory
            for trail in _TRAILS:
                trail_bad, trail_heads, trail_events = _verify_trail(conn, trail)
                bad += trail_bad
                heads += trail_heads
                events += trail_events
    first = min(bad, key=lambda b: (b.id is None, b.trail != "units", b.id or 0)) if bad else None
    return Verification(events, len(heads), digest_of_heads(heads), first, len(bad))
