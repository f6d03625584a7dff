"""Settlement in bulk: a day's settled trades as one batch of transfers, all of them or none.

Each line means exactly what the same transfer sent alone would (lowest serials first, or the named
blocks; blocks split and the receiver's neighbours joined; one audit event per block moved, on the
sender's chain), applied in the order of the lines, so a line may move units an earlier line delivered.
What differs is how it is done: every account of the batch is locked in one sorted statement, their
available blocks of the batch's credit types are read once, the lines are played in memory with the same
block arithmetic as a single transfer (registry/ledger/blocks.py), each line's audit events hashed and sent
as it is played (one COPY, which PostgreSQL inserts while the next lines are played), and then the blocks
that changed are written set-based in three statements (a delete, an update, a COPY), every chain head in
one. The database's own invariants (no overlap,
conservation, links of every chain) are checked as for any transfer: the constraints and triggers run for
COPY as for INSERT.

A line that cannot apply (unknown or closed account, not enough units, serials not held) does not stop
the others from being checked: the batch is refused with every failing line named, and nothing changes."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from sqlmodel import Session

from registry import authz
from registry.audit import service as audit
from registry.audit.models import EventKind
from registry.copy import CopyText, copy_in
from registry.db import run
from registry.errors import RegistryError
from registry.ledger import repository as repo
from registry.ledger.blocks import Block, Piece, normalize_ranges, take_lowest, take_ranges
from registry.ledger.models import SERIAL_MAX, AccountStatus, BlockStatus
from registry.ledger.repository import LockedAccount, State
from registry.ledger.service import MAX_QUANTITY, MovedBlock, Movement, Selection
from registry.principal import Actor

AVAILABLE = BlockStatus.AVAILABLE.value
MAX_LINES = 20_000


@dataclass(frozen=True, slots=True)
class Line:
    from_account_id: UUID
    to_account_id: UUID
    selection: Selection
    ref: str | None = None
    actor: Actor | None = None  # whose transfer it is, when not the batch's (transfers done together)


@dataclass(frozen=True, slots=True)
class LineError:
    line: int  # 1-based, as a person counts the lines of a file
    code: str
    field: str | None
    detail: str
    ref: str | None


class BatchRefused(RegistryError):
    """Some lines cannot apply: nothing of the batch was applied."""

    code = "batch_refused"
    title = "The batch was refused: nothing was applied"
    message = "The batch was refused: {failing} line(s) cannot apply, nothing was applied."

    def __init__(self, errors: Sequence[LineError]) -> None:
        shown = "; ".join(f"line {e.line}: {e.detail}" for e in errors[:5]) + (
            " …" if len(errors) > 5 else ""
        )
        super().__init__(
            f"{len(errors)} line(s) cannot apply, so none was: {shown}",
            failing=len(errors),
            errors=[
                {"line": e.line, "ref": e.ref, "code": e.code, "field": e.field, "detail": e.detail}
                for e in errors
            ],
        )
        self.errors = list(errors)


class _Refusal(Exception):
    def __init__(self, code: str, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.code, self.field, self.detail = code, field, detail


@dataclass
class _Book:
    """The available blocks of the batch's accounts, by (account, credit type), sorted by serial, as the
    lines leave them, and the blocks they started from."""

    blocks: dict[tuple[UUID, int], list[Block]]
    initial: dict[int, Block] = field(default_factory=dict)

    def take(self, account_id: UUID, ct_id: int, selection: Selection, code: str) -> list[Piece]:
        blocks = self.blocks.get((account_id, ct_id), [])
        if selection.quantity is not None:
            pieces = take_lowest(blocks, selection.quantity)
            got = sum(p.quantity for p in pieces)
            if got < selection.quantity:
                raise _Refusal(
                    "insufficient_units", "quantity",
                    f"account {account_id} has {got} available {code} units here, {selection.quantity} asked",
                )  # fmt: skip
            return pieces
        ranges = normalize_ranges((b.serial_start, b.serial_end) for b in selection.blocks)
        pieces, missing = take_ranges(blocks, ranges)
        if missing:
            shown = ", ".join(f"{s}-{e}" for s, e in missing[:3])
            raise _Refusal(
                "insufficient_units", "blocks", f"account {account_id} does not hold {code} {shown}"
            )
        return pieces

    def move(self, source: UUID, target: UUID, ct_id: int, pieces: list[Piece]) -> None:
        """Out of the source's blocks, into the target's, joining neighbours of one batch as a transfer does.
        `pieces` sorted by serial; several may come out of one block (named ranges inside it)."""
        key = (source, ct_id)
        cut: dict[int, list[Piece]] = {}
        for piece in pieces:
            cut.setdefault(id(piece.block), []).append(piece)
        remaining: list[Block] = []
        for block in self.blocks.get(key, ()):
            taken = cut.get(id(block))
            if taken is None:
                remaining.append(block)
                continue
            # What the block keeps: the gaps between its pieces, in place (so the list stays sorted).
            cursor = block.serial_start
            for piece in taken:
                if piece.start > cursor:
                    remaining.append(_moved(block, cursor, piece.start - 1, source))
                cursor = piece.end + 1
            if cursor <= block.serial_end:
                remaining.append(_moved(block, cursor, block.serial_end, source))
        self.blocks[key] = remaining
        into = self.blocks.setdefault((target, ct_id), [])
        for piece in pieces:
            _insert_joined(into, _moved(piece.block, piece.start, piece.end, target))


def _start(block: Block) -> int:
    return block.serial_start


def _piece_start(piece: Piece) -> int:
    return piece.start


def _moved(block: Block, start: int, end: int, account_id: UUID) -> Block:
    """A new (not yet stored: id 0) available block of `block`'s batch (Block._replace is slower)."""
    return Block(0, block.credit_type_id, block.batch_id, start, end, account_id, AVAILABLE, None)


def _insert_joined(blocks: list[Block], new: Block) -> None:
    """Put `new` into the sorted list, joined with an adjacent block of its batch on either side."""
    at = bisect.bisect_left(blocks, new.serial_start, key=_start)
    if (
        at > 0
        and blocks[at - 1].batch_id == new.batch_id
        and blocks[at - 1].serial_end + 1 == new.serial_start
    ):
        at -= 1
        new = _moved(new, blocks.pop(at).serial_start, new.serial_end, new.account_id)
    if (
        at < len(blocks)
        and blocks[at].batch_id == new.batch_id
        and new.serial_end + 1 == blocks[at].serial_start
    ):
        new = _moved(new, new.serial_start, blocks.pop(at).serial_end, new.account_id)
    blocks.insert(at, new)


def settle(session: Session, actor: Actor, lines: Sequence[Line]) -> list[Movement]:
    """Apply every line, in order, or none (BatchRefused naming each line that cannot apply)."""
    for principal in {actor.principal} | {ln.actor.principal for ln in lines if ln.actor is not None}:
        authz.require_role(principal, *authz.WRITERS_OF_REFERENCE_DATA)
    if not 1 <= len(lines) <= MAX_LINES:
        raise BatchRefused([LineError(0, "validation_error", "transfers", f"1 to {MAX_LINES} lines", None)])
    codes = repo.credit_type_codes(session)
    ids = {code: ct_id for ct_id, code in codes.items()}
    errors: list[LineError] = []
    shapes = _shapes(lines, ids, errors)
    accounts = repo.lock_accounts(
        session, sorted({a for ln in lines for a in (ln.from_account_id, ln.to_account_id)})
    )
    wanted = {(a, ct) for ln, ct in zip(lines, shapes, strict=True) if ct is not None
              for a in (ln.from_account_id, ln.to_account_id)}  # fmt: skip
    book = _Book(blocks=defaultdict(list))
    for block in _available_blocks(session, sorted(wanted)):
        book.blocks[(block.account_id, block.credit_type_id)].append(block)
        book.initial[block.id] = block
    movements: list[Movement] = []
    states: dict[UUID, State] = {}  # each account's "available" state, made once (they are immutable)

    def available(account_id: UUID) -> State:
        state = states.get(account_id)
        if state is None:
            state = states[account_id] = State(account_id, AVAILABLE)
        return state

    # The events go to PostgreSQL as the lines make them (one COPY, held open while the lines are played:
    # the database inserts them meanwhile), inside a savepoint: a refused batch drops them.
    savepoint = session.begin_nested()
    trail = audit.EventStream(session, actor, EventKind.TRANSFER)
    try:
        for n, (line, ct_id) in enumerate(zip(lines, shapes, strict=True), start=1):
            source, target = available(line.from_account_id), available(line.to_account_id)
            if ct_id is None:
                movements.append(Movement(EventKind.TRANSFER, source, target))
                continue
            try:
                _check_accounts(accounts, line)
                pieces = book.take(line.from_account_id, ct_id, line.selection, codes[ct_id])
            except _Refusal as refused:
                errors.append(LineError(n, refused.code, refused.field, refused.detail, line.ref))
                movements.append(Movement(EventKind.TRANSFER, source, target))
                continue
            pieces.sort(key=_piece_start)
            book.move(line.from_account_id, line.to_account_id, ct_id, pieces)
            if not errors:  # once a line is refused, the others are only checked
                chain = accounts[line.from_account_id]
                trail.act(line.actor or actor)
                for p in pieces:
                    trail.add(chain, audit.Change(
                        credit_type_id=ct_id, batch_id=p.block.batch_id, serial_start=p.start, serial_end=p.end,
                        from_account_id=line.from_account_id, from_status=AVAILABLE,
                        to_account_id=line.to_account_id, to_status=AVAILABLE), line.ref)  # fmt: skip
            code = codes[ct_id]
            movements.append(Movement(
                EventKind.TRANSFER, source, target, [MovedBlock(code, p.block.batch_id, p.start, p.end) for p in pieces]
            ))  # fmt: skip
        if errors:
            raise BatchRefused(errors)
        trail.close()
        _write(session, book)
    except BaseException:
        trail.abort()
        savepoint.rollback()
        raise
    savepoint.commit()
    return movements


def _credit_type_of(line: Line, ids: dict[str, int]) -> int:
    """The line's credit type id, when the line makes sense on its own; otherwise why not."""
    selection = line.selection
    if line.from_account_id == line.to_account_id:
        raise _Refusal(
            "validation_error", "to_account_id", "units cannot be transferred to the account they are in"
        )
    if (selection.quantity is None) == (not selection.blocks):
        raise _Refusal(
            "validation_error", "quantity", "give either a quantity (with its credit type) or blocks"
        )
    types = {b.credit_type for b in selection.blocks} | (
        {selection.credit_type} if selection.credit_type else set()
    )
    if len(types) != 1:
        raise _Refusal("validation_error", "credit_type", "one credit type per line")
    code = types.pop()
    if code not in ids:
        raise _Refusal("not_found", "credit_type", f"unknown credit type {code}")
    if selection.quantity is not None and not 1 <= selection.quantity <= MAX_QUANTITY:
        raise _Refusal("validation_error", "quantity", f"quantity must be between 1 and {MAX_QUANTITY}")
    ranges = [(b.serial_start, b.serial_end) for b in selection.blocks]
    if any(not 1 <= s <= e <= SERIAL_MAX for s, e in ranges):
        raise _Refusal("validation_error", "blocks", "need 1 <= serial_start <= serial_end <= 2^40-1")
    if ranges and sum(e - s + 1 for s, e in normalize_ranges(ranges)) != sum(e - s + 1 for s, e in ranges):
        raise _Refusal("validation_error", "blocks", "the blocks overlap each other")
    return ids[code]


def _shapes(lines: Sequence[Line], ids: dict[str, int], errors: list[LineError]) -> list[int | None]:
    """Each line's credit type id, or None (and its error) for a line that cannot apply whatever is held."""
    out: list[int | None] = []
    for n, line in enumerate(lines, start=1):
        try:
            out.append(_credit_type_of(line, ids))
        except _Refusal as refused:
            errors.append(LineError(n, refused.code, refused.field, refused.detail, line.ref))
            out.append(None)
    return out


def _check_accounts(accounts: dict[UUID, LockedAccount], line: Line) -> None:
    for where, account_id in (
        ("from_account_id", line.from_account_id),
        ("to_account_id", line.to_account_id),
    ):
        found = accounts.get(account_id)
        if found is None:
            raise _Refusal("not_found", where, f"account {account_id} not found")
        if found.status != AccountStatus.ACTIVE:
            raise _Refusal("invalid_state", where, f"account {account_id} is closed")


def _write(session: Session, book: _Book) -> None:
    """The blocks the lines changed, in three statements. A new block that starts inside a block no longer
    there (its remainder, a piece of it, a join grown from it) takes that block's row: an UPDATE, checked as
    a transition, with no foreign key to look up again for a batch that stays the same; the other initial
    blocks are deleted, the other new ones copied in. Overlaps and conservation are checked at commit."""
    final = [b for blocks in book.blocks.values() for b in blocks]
    kept = {b.id for b in final if b.id and book.initial.get(b.id) == b}
    gone = sorted((b for i, b in book.initial.items() if i not in kept), key=_span_start)
    starts = [_span_start(b) for b in gone]
    new = [b for b in final if not (b.id and b.id in kept)]
    taken: set[int] = set()
    updates: list[tuple[int, Block]] = []
    inserts: list[Block] = []
    for b in new:
        at = bisect.bisect_right(starts, _span_start(b)) - 1
        old = gone[at] if at >= 0 else None
        if (old is not None and old.id not in taken and old.batch_id == b.batch_id
                and old.serial_end >= b.serial_start):  # fmt: skip
            taken.add(old.id)
            updates.append((old.id, b))
        else:
            inserts.append(b)
    deleted = [b.id for b in gone if b.id not in taken]
    cell = CopyText().value
    if deleted:
        run(session, _DELETE_BLOCKS, {"ids": _array(map(str, deleted))})
    if updates:
        run(session, _UPDATE_BLOCKS, {
            "ids": _array(str(i) for i, _ in updates), "starts": _array(str(b.serial_start) for _, b in updates),
            "ends": _array(str(b.serial_end) for _, b in updates),
            "accounts": _array(cell(b.account_id) for _, b in updates),
        })  # fmt: skip
    if inserts:
        copy_in(session, _COPY_BLOCKS, [
            f"{b.credit_type_id}\t{cell(b.batch_id)}\t{b.serial_start}\t{b.serial_end}\t{cell(b.account_id)}\t"
            f"{AVAILABLE}" for b in inserts
        ])  # fmt: skip


def _available_blocks(session: Session, pairs: Sequence[tuple[UUID, int]]) -> list[Block]:
    """repo.available_blocks, read straight through the driver (`db.run`): the same blocks, in the same
    order (tens of thousands of rows a batch; the ORM's rows cost more than the blocks themselves)."""
    if not pairs:
        return []
    accounts, types = _array(str(a) for a, _ in pairs), _array(str(ct) for _, ct in pairs)
    rows = run(session, _AVAILABLE_BLOCKS, {"accounts": accounts, "types": types, "status": AVAILABLE})
    return [Block(*row) for row in rows]


_AVAILABLE_BLOCKS = """
    SELECT id, credit_type_id, batch_id, serial_start, serial_end, account_id, status, pledge_id FROM holding
     WHERE (account_id, credit_type_id) IN (
               SELECT * FROM unnest(CAST(CAST(%(accounts)s AS text) AS uuid[]),
                                    CAST(CAST(%(types)s AS text) AS smallint[])))
       AND status = %(status)s
     ORDER BY account_id, credit_type_id, serial_start"""


def _span_start(block: Block) -> tuple[int, int]:
    return block.credit_type_id, block.serial_start


def _array(items: Iterable[str]) -> str:
    """A PostgreSQL array literal of numbers or UUIDs (nothing to quote): psycopg dumps a list of 10,000
    values one by one, ~50 times slower."""
    return "{" + ",".join(items) + "}"


# The arrays go as text (see _array) and are cast by PostgreSQL.
_DELETE_BLOCKS = "DELETE FROM holding WHERE id = ANY(CAST(CAST(%(ids)s AS text) AS bigint[]))"
_UPDATE_BLOCKS = (
    "UPDATE holding h SET serial_start = v.s, serial_end = v.e, account_id = v.a "
    "FROM unnest(CAST(CAST(%(ids)s AS text) AS bigint[]), CAST(CAST(%(starts)s AS text) AS bigint[]), "
    "CAST(CAST(%(ends)s AS text) AS bigint[]), CAST(CAST(%(accounts)s AS text) AS uuid[])) AS v(id, s, e, a) "
    "WHERE h.id = v.id"
)
_COPY_BLOCKS = (
    "COPY holding (credit_type_id, batch_id, serial_start, serial_end, account_id, status) FROM STDIN"
)
