"""Console users: made with the `registry` command, passwords hashed with Argon2id, sessions by random token.

A session cookie carries 256 random bits; only their SHA-256 is stored (like API keys, a fast digest is
right for a random secret). Sessions end on sign-out, after `IDLE` without a request, or `ABSOLUTE` after
sign-in, whichever comes first. Each session has its own CSRF token, which every form must send back.

Signing in costs an Argon2id hash of 64 MiB, so it is bounded before it is done: each attempt is counted
against its client and against the username before the hash (registry/ratelimit), and at most
`HASHES_AT_ONCE` hashes run at once in a process; an attempt that cannot get a turn within `HASH_WAIT`
is refused as busy rather than queued without end."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import text
from sqlmodel import Session, select

from registry.access.service import ROLE_PARTY_KINDS
from registry.db import beside
from registry.errors import AlreadyExists, Busy, InvalidInput
from registry.ledger.models import Party, PartyKind
from registry.principal import Principal, Role
from registry.ratelimit import service as ratelimit
from registry.users.models import ConsoleSession, ConsoleUser

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
PASSWORD_MIN_LENGTH = 12
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")

_hasher = PasswordHasher()  # Argon2id with RFC 9106's second recommended parameters (64 MiB, 3 passes)
_decoy: str | None = None

# Per client (address) and per username: guessing from many addresses still meets the second. A user
# under such an attack waits out the same blocks (at most 15 minutes at a time) as the guesser.
CLIENT_SIGN_IN_LIMIT = ratelimit.Policy(scope="console_sign_in", free_failures=5)
USER_SIGN_IN_LIMIT = ratelimit.Policy(scope="console_sign_in_user", free_failures=10)
HASHES_AT_ONCE = 2  # 2 x 64 MiB at most, per process
HASH_WAIT_S = 3.0
_hash_turns = threading.BoundedSemaphore(HASHES_AT_ONCE)


@contextmanager
def _hash_turn() -> Iterator[None]:
    if not _hash_turns.acquire(timeout=HASH_WAIT_S):
        raise Busy("too many sign-ins at once; retry in a moment")
    try:
        yield
    finally:
        _hash_turns.release()


def _hash(password: str) -> str:
    with _hash_turn():
        return _hasher.hash(password)


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: ConsoleUser
    session_id: UUID
    csrf_token: str

    @property
    def principal(self) -> Principal:
        return principal_of(self.user)


def principal_of(user: ConsoleUser) -> Principal:
    """The username is the operator: what four eyes compare and the audit trail names."""
    return Principal(party_id=user.party_id, role=Role(user.role), operator=user.username)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def check_password(password: str) -> None:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise InvalidInput("password", f"at least {PASSWORD_MIN_LENGTH} characters")
    if len(password) > 1024:
        raise InvalidInput("password", "at most 1024 characters")


def create_user(
    session: Session,
    *,
    username: str,
    display_name: str,
    party: Party,
    role: Role,
    password: str,
    now: datetime,
) -> ConsoleUser:
    if not USERNAME.match(username):
        raise InvalidInput("username", "2-64 characters: lower-case letters, digits, '.', '_', '-'")
    if role not in ROLE_PARTY_KINDS or PartyKind(party.kind) not in ROLE_PARTY_KINDS[role]:
        raise InvalidInput("role", f"a {party.kind} party has no {role.value} users")
    check_password(password)
    if session.exec(select(ConsoleUser).where(ConsoleUser.username == username)).first() is not None:
        raise AlreadyExists(f"user {username} exists (users are disabled, never reused)")
    user = ConsoleUser(
        username=username,
        display_name=display_name.strip() or username,
        party_id=party.id,
        role=role,
        password_hash=_hash(password),
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str, now: datetime) -> bool:
    """A new password ends the user's open sessions."""
    check_password(password)
    user = _by_username(session, username)
    if user is None:
        return False
    user.password_hash = _hash(password)
    _end_all(session, user.id, now)
    session.flush()
    return True


def disable(session: Session, username: str, now: datetime) -> bool:
    user = _by_username(session, username)
    if user is None or user.disabled_at is not None:
        return False
    user.disabled_at = now
    _end_all(session, user.id, now)
    session.flush()
    return True


def authenticate(session: Session, username: str, password: str) -> ConsoleUser | None:
    """The user, if the password is theirs and they are not disabled. An unknown name costs the same
    hash as a known one, so response times do not tell which names exist."""
    global _decoy  # noqa: PLW0603 (made once, on first use)
    user = _by_username(session, username.strip().lower())
    if user is None or user.disabled_at is not None:
        _decoy = _decoy or _hash(secrets.token_hex(16))
        _verify(_decoy, password)
        return None
    if not _verify(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hash(password)
        session.flush()
    return user


def sign_in(
    session: Session, username: str, password: str, *, client: str, now: datetime
) -> ConsoleUser | None:
    """`authenticate`, counted first against the client and the username (RateLimited while either is
    blocked: then no hash is computed). A success takes its counts back; a failure keeps them."""
    by_client = ratelimit.reserve(session, CLIENT_SIGN_IN_LIMIT, client, now)
    try:
        by_user = ratelimit.reserve(session, USER_SIGN_IN_LIMIT, username.strip().lower()[:64], now)
    except ratelimit.RateLimited:
        _give_back(session, by_client)
        raise
    try:
        user = authenticate(session, username, password)
    except Busy:  # not an attempt at all: no hash was computed
        _give_back(session, by_client, by_user)
        raise
    if user is not None:
        ratelimit.release(session, by_client)
        ratelimit.release(session, by_user)
    return user


def _give_back(session: Session, *attempts: ratelimit.Attempt) -> None:
    """Counts taken for an attempt that was refused before it was made, in a transaction of their own:
    the request may end in an error and roll its own back."""
    with beside(session) as side:
        for attempt in attempts:
            ratelimit.release(side, attempt)


def start_session(session: Session, user: ConsoleUser, now: datetime) -> tuple[str, SignedIn]:
    """Returns the cookie's token (shown once) and the signed-in session."""
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(
        token_digest=token_digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + ABSOLUTE,
    )
    session.add(row)
    session.flush()
    return token, SignedIn(user, row.id, row.csrf_token)


def resume(session: Session, token: str, now: datetime) -> SignedIn | None:
    """The session a cookie names, if it is still open; marks it seen."""
    if not token or len(token) > 100:
        return None
    row = session.exec(
        select(ConsoleSession).where(ConsoleSession.token_digest == token_digest(token))
    ).first()
    if row is None or row.ended_at is not None or row.expires_at <= now or row.last_seen_at + IDLE <= now:
        return None
    user = session.get(ConsoleUser, row.user_id)
    if user is None or user.disabled_at is not None:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        session.flush()
    return SignedIn(user, row.id, row.csrf_token)


def end_session(session: Session, session_id: UUID, now: datetime) -> None:
    session.execute(
        text("UPDATE console_session SET ended_at = :now WHERE id = :id AND ended_at IS NULL"),
        {"now": now, "id": session_id},
    )


def _end_all(session: Session, user_id: UUID, now: datetime) -> None:
    session.execute(
        text("UPDATE console_session SET ended_at = :now WHERE user_id = :u AND ended_at IS NULL"),
        {"now": now, "u": user_id},
    )


def _by_username(session: Session, username: str) -> ConsoleUser | None:
    return session.exec(select(ConsoleUser).where(ConsoleUser.username == username)).first()


def _verify(password_hash: str, password: str) -> bool:
    try:
        with _hash_turn():
            return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
