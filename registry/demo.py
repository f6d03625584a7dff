"""A realistic demo: an exchange, two banks, three enterprises, CCER and CDCER issuances, some trades.

Loading is idempotent (a second run adds nothing). The first load makes the demo's API keys and console
users and prints them once; a later run changes nothing and says how to make new ones."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from sqlalchemy import text
from sqlmodel import Session

from registry.access import service as access
from registry.calendar import EXCHANGE_TZ, exchange_day
from registry.ledger import repository as repo
from registry.ledger import service as ledger
from registry.ledger.models import Party, PartyKind
from registry.ledger.service import Selection
from registry.ledger.uscc import make as uscc
from registry.principal import Actor, Principal, Role
from registry.users import service as users

EXCHANGE = ("西南环境权益交易所 Southwest Environmental Rights Exchange", "12510000MB1K2X3Y4")
BANKS = [
    ("蜀都银行成都分行 Shudu Bank Chengdu Branch", "91510100MA62A1B2C"),
    ("锦江绿色商业银行 Jinjiang Green Commercial Bank", "91510100MA6D3E4F5"),
]
ENTERPRISES = [
    ("蜀南林业碳汇有限公司 Shunan Forestry Carbon Sink Co.", "91511500MA6G7H8J9"),
    ("川西水电开发有限公司 West Sichuan Hydropower Co.", "91513300MA6K1L2M3"),
    ("成都绿行科技有限公司 Chengdu Lvxing Technology Co.", "91510100MA6N4P5Q6"),
]
AUDITOR = "四川省生态环境厅 Sichuan Dept. of Ecology and Environment (auditor)"


@dataclass(frozen=True)
class DemoKey:
    role: Role
    party: str
    key: str


# Issuances (enterprise by its place in ENTERPRISES, credit type, project, type, vintage, quantity) and the
# trades that settle as transfers after them: the affiliated company ends up holding CCER it can pledge
# for the borrower.
ISSUANCES = [
    (0, "CCER", "CCER-14-2023-0012", "forestry", 2023, 50_000),
    (1, "CCER", "CCER-01-2024-0107", "hydropower", 2024, 120_000),
    (2, "CDCER", "CDCER-2024-031", "transport", 2024, 8_000),
]
TRADES = [(1, 2, "CCER", 25_000), (0, 1, "CCER", 5_000), (2, 0, "CDCER", 1_500)]


def load(session: Session, actor: Actor) -> bool:
    """Returns False when the demo was loaded before. The story starts 45 days ago, so that the active
    pledge has a valuation history, a top-up and two certificate versions by today."""
    if repo.get_party_by_name(session, EXCHANGE[0]) is not None:
        return False
    now, actor = actor, replace(actor, at=actor.at - timedelta(days=45))
    parties = _parties(session, actor)
    accounts = {
        name: ledger.create_account(session, actor, party_id=p.id).id
        for name, p in parties.items()
        if p.kind != PartyKind.AUDITOR
    }
    holders = [accounts[name] for name, _ in ENTERPRISES]
    for owner, credit_type, project, kind, vintage, quantity in ISSUANCES:
        ledger.issue(session, actor, credit_type=credit_type, project_code=project, project_type=kind,
                     vintage=vintage, quantity=quantity, account_id=holders[owner])  # fmt: skip
    for seller, buyer, credit_type, quantity in TRADES:
        ledger.transfer(session, actor, from_account_id=holders[seller], to_account_id=holders[buyer],
                        selection=Selection(credit_type=credit_type, quantity=quantity))  # fmt: skip
    ledger.retire(session, actor, account_id=holders[1], selection=Selection(credit_type="CCER", quantity=2_000),
                  reason="2025 voluntary offset")  # fmt: skip
    _prices(session, now)
    _pledges(session, now, parties, accounts)
    return True


def _parties(session: Session, actor: Actor) -> dict[str, Party]:
    parties: dict[str, Party] = {}
    for (name, code), kind in (
        [(EXCHANGE, PartyKind.EXCHANGE)]
        + [(b, PartyKind.BANK) for b in BANKS]
        + [(e, PartyKind.ENTERPRISE) for e in ENTERPRISES]
    ):
        parties[name] = ledger.create_party(session, actor, name=name, kind=kind, credit_code=uscc(code))
    parties[AUDITOR] = ledger.create_party(
        session, actor, name=AUDITOR, kind=PartyKind.AUDITOR, credit_code=None
    )
    return parties


def _prices(session: Session, actor: Actor) -> None:
    """Six weeks of listed CCER prints around 60-70 CNY/t and a block trade; CDCER entered by hand."""
    from registry.valuation import prices
    from registry.valuation.models import TradeKind

    today = exchange_day(actor.at)
    trades = []
    for back in range(42, 0, -1):
        day = today - timedelta(days=back)
        if day.weekday() < 5:
            wobble = Decimal((back * 7) % 11 - 5) / 4
            trades.append(prices.Trade("CCER", day, Decimal("66.00") + wobble, 8_000 + (back * 313) % 5_000))
    trades.append(prices.Trade("CCER", today - timedelta(days=3), Decimal("62.50"), 40_000, TradeKind.BLOCK))
    trades.append(prices.Trade("CDCER", today - timedelta(days=10), Decimal("38.00"), 1_200))
    prices.record_trades(session, actor, trades)


@dataclass(frozen=True)
class _Cast:
    """Who acts in the demo's story, as actors at a given moment."""

    parties: dict[str, Party]

    def bank(self, name: str, at: datetime) -> Actor:
        return Actor(Principal(party_id=self.parties[name].id, role=Role.BANK), at, request_id="demo")

    def holder(self, name: str, user: str, at: datetime) -> Actor:
        principal = Principal(party_id=self.parties[name].id, role=Role.HOLDER, operator=user)
        return Actor(principal, at, request_id="demo")

    def operator(self, name: str, at: datetime) -> Actor:
        principal = Principal(party_id=self.parties[EXCHANGE[0]].id, role=Role.EXCHANGE, operator=name)
        return Actor(principal, at, request_id="demo")


TERMS = (Decimal("0.80"), Decimal("1.30"), Decimal("1.10"))  # the lender caps the rate at 80 %


def _pledges(session: Session, now: Actor, parties: dict[str, Party], accounts: dict[str, UUID]) -> None:
    """An affiliated company's CCER pledged for the borrower 40 days ago (asked by the bank, consented by
    the pledgor, confirmed by the exchange), valued every business day since, topped up 12 days ago; a
    request of the other bank that its pledgor consented to, waiting for the back office; and a request
    still waiting for its pledgor's consent."""
    from registry.pledge import service as pledges

    cast, terms = _Cast(parties), pledges.Terms(*TERMS)
    hydro, shunan = ENTERPRISES[1][0], ENTERPRISES[0][0]
    today = exchange_day(now.at)  # loan dates follow the day the demo is loaded: always running loans
    _active_pledge(session, now, cast, accounts, today)
    waiting = pledges.register(
        session, cast.bank(BANKS[1][0], now.at - timedelta(hours=2)), pledgor_account_id=accounts[hydro],
        borrower_party_id=parties[hydro].id,
        loan=pledges.Loan("锦江-ZY-2026-017", Decimal("1500000.00"), today, today + timedelta(days=365)),
        collateral=Selection(credit_type="CCER", quantity=30_000), terms=terms,
    )  # fmt: skip
    consenter = cast.holder(hydro, "chuanxi-hydro", now.at - timedelta(hours=1))
    pledges.consent(session, consenter, waiting.instruction.id)
    pledges.register(
        session, cast.bank(BANKS[0][0], now.at), pledgor_account_id=accounts[shunan],
        borrower_party_id=parties[shunan].id,
        loan=pledges.Loan(DEMO_AWAITING_CONTRACT, Decimal("1200000.00"), today, today + timedelta(days=364)),
        collateral=Selection(credit_type="CCER", quantity=25_000), terms=terms, bank_ref="LN-2026-0042",
    )  # fmt: skip


def _active_pledge(session: Session, now: Actor, cast: _Cast, accounts: dict[str, UUID], today: date) -> None:
    """Asked 40 days ago, consented, confirmed; valued after every business day's close since; topped up
    (asked, consented, confirmed by a second operator) 12 days ago."""
    from registry.pledge import service as pledges
    from registry.pledge.states import InstructionType
    from registry.valuation import service as valuation

    lvxing, shunan = ENTERPRISES[2][0], ENTERPRISES[0][0]
    asked, start = now.at - timedelta(days=40), today - timedelta(days=41)
    active = pledges.register(
        session, cast.bank(BANKS[0][0], asked), pledgor_account_id=accounts[lvxing],
        borrower_party_id=cast.parties[shunan].id,
        loan=pledges.Loan("蜀都碳汇贷-2026-0001", Decimal("1000000.00"), start, start + timedelta(days=364)),
        collateral=Selection(credit_type="CCER", quantity=20_000), terms=pledges.Terms(*TERMS),
        pboc_registration_no="0512 3456 7890 1234 5678", bank_ref="LN-2026-0001",
    )  # fmt: skip
    pledges.consent(session, cast.holder(lvxing, "lvxing", asked + timedelta(hours=1)), active.instruction.id)
    pledges.confirm(
        session, cast.operator("demo-operator-1", asked + timedelta(hours=3)), active.instruction.id
    )
    for back in range(39, 0, -1):  # the daily revaluation after the close, 15:30 in Shanghai
        day = (now.at - timedelta(days=back)).astimezone(EXCHANGE_TZ).replace(hour=15, minute=30)
        if back == 12:  # the bank asks for a top-up, the pledgor agrees, a second operator confirms by noon
            top_up = pledges.request(
                session, cast.bank(BANKS[0][0], day - timedelta(hours=7)), active.pledge.id,
                kind=InstructionType.TOP_UP, selection=Selection(credit_type="CCER", quantity=2_000),
            )  # fmt: skip
            pledges.consent(session, cast.holder(lvxing, "lvxing", day - timedelta(hours=6)), top_up.id)
            pledges.confirm(session, cast.operator("demo-operator-2", day - timedelta(hours=4)), top_up.id)
        if day.weekday() < 5:
            valuation.revalue(session, now=day, pledge_ids=[active.pledge.id])


# The demo's request that waits for its pledgor (蜀南林业) to consent, as the API guide walks through it.
DEMO_AWAITING_CONTRACT = "蜀都碳汇贷-2026-0042"


@dataclass(frozen=True)
class KeySpec:
    role: Role
    party: str
    operator: str | None = None


# The keys a fresh demo prints, one per person or system that uses the API.
KEYS = [
    KeySpec(Role.EXCHANGE, EXCHANGE[0], "demo-operator-1"),
    KeySpec(Role.EXCHANGE, EXCHANGE[0], "demo-operator-2"),
    KeySpec(Role.BANK, BANKS[0][0]),
    KeySpec(Role.BANK, BANKS[1][0]),
    KeySpec(Role.HOLDER, ENTERPRISES[2][0], "lvxing"),
    KeySpec(Role.HOLDER, ENTERPRISES[0][0], "shunan-forestry"),
    KeySpec(Role.AUDITOR, AUDITOR),
]


def issue_keys(session: Session, actor: Actor) -> list[DemoKey]:
    """A new key for each of `KEYS` (only the digests are stored: these are the only copies)."""
    keys = []
    for spec in KEYS:
        party = repo.get_party_by_name(session, spec.party)
        assert party is not None
        issued = access.create_key(session, party=party, role=spec.role, operator=spec.operator, now=actor.at)
        keys.append(
            DemoKey(spec.role, spec.party + (f" ({spec.operator})" if spec.operator else ""), issued.key)
        )
    return keys


@dataclass(frozen=True)
class DemoUser:
    username: str
    party: str
    password: str


# Web console users for each kind of party: (username, display name, role, party).
USERS = [
    ("demo-operator-1", "操作员一 Operator One", Role.EXCHANGE, EXCHANGE[0]),
    ("demo-operator-2", "操作员二 Operator Two", Role.EXCHANGE, EXCHANGE[0]),
    ("shudu-bank", "蜀都银行信贷部 Shudu Bank credit desk", Role.BANK, BANKS[0][0]),
    ("jinjiang-bank", "锦江银行信贷部 Jinjiang Bank credit desk", Role.BANK, BANKS[1][0]),
    ("lvxing", "绿行科技财务部 Lvxing Technology finance", Role.HOLDER, ENTERPRISES[2][0]),
    ("shunan-forestry", "蜀南林业财务部 Shunan Forestry finance", Role.HOLDER, ENTERPRISES[0][0]),
    ("chuanxi-hydro", "川西水电财务部 West Sichuan Hydropower finance", Role.HOLDER, ENTERPRISES[1][0]),
    ("auditor", "审计员 Auditor", Role.AUDITOR, AUDITOR),
]


def console_users(session: Session, actor: Actor) -> list[DemoUser]:
    """The `USERS`, with fresh random passwords (reset when they exist)."""
    made = []
    for username, display, role, party_name in USERS:
        party = repo.get_party_by_name(session, party_name)
        assert party is not None
        password = secrets.token_urlsafe(12)
        if not users.set_password(session, username, password, actor.at):
            users.create_user(session, username=username, display_name=display, party=party, role=role,
                              password=password, now=actor.at)  # fmt: skip
        made.append(DemoUser(username, party_name, password))
    return made


@dataclass(frozen=True)
class ExistingUser:
    username: str
    role: str
    party: str
    active: bool


def existing_users(session: Session) -> list[ExistingUser]:
    """The demo's console users as they are now (a second run shows them and changes nothing)."""
    rows = session.execute(
        text("SELECT u.username, u.role, p.name AS party, u.disabled_at IS NULL AS active "
             "FROM console_user u JOIN party p ON p.id = u.party_id WHERE u.username = ANY(:names) "
             "ORDER BY array_position(:names, u.username)"),
        {"names": [username for username, *_ in USERS]},
    )  # fmt: skip
    return [ExistingUser(r.username, r.role, r.party, r.active) for r in rows]


def sample_certificate(session: Session) -> tuple[str, str] | None:
    """Number and verification code of the demo's valid certificate, for trying the public check."""
    from registry.certificate.models import CertificateStatus

    row = session.execute(
        text(
            "SELECT number, verification_code FROM certificate WHERE status = :valid ORDER BY issued_at LIMIT 1"
        ),
        {"valid": CertificateStatus.VALID},
    ).first()
    return None if row is None else (row.number, row.verification_code)
