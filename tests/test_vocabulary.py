"""Every vocabulary is one StrEnum in the package that owns it (STYLE.md): the database's CHECKs list exactly
its members, the SQL written as text names only its members, and the copies a lower layer must keep (it may
not import the package above it) equal them."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import get_args

import pytest
from sqlalchemy import text
from sqlmodel import Session

from api.schemas.pledges import InstructionCreate
from registry.access.models import GRANTED_ROLES
from registry.alert import service as alert_service
from registry.alert.models import AlertKind, AlertStatus, DeliveryStatus, WebhookEvent
from registry.audit.decisions import DecisionKind
from registry.audit.models import EventKind
from registry.certificate.models import CertificateStatus
from registry.ledger.models import AccountStatus, BlockStatus, PartyKind
from registry.pledge.states import REQUESTABLE, InstructionStatus, InstructionType, PledgeStatus
from registry.principal import Role
from registry.valuation import service as valuation_service
from registry.valuation.models import TradeKind, ValuationError, ValuationLevel, ValuationMethod

ROOT = Path(__file__).resolve().parent.parent

# (table, CHECK) -> the vocabulary it holds.
CHECKS: dict[tuple[str, str], tuple[str, ...]] = {
    ("party", "ck_party_kind"): tuple(PartyKind),
    ("account", "ck_account_status"): tuple(AccountStatus),
    ("holding", "ck_holding_status"): tuple(BlockStatus),
    ("pledge", "ck_pledge_status"): tuple(PledgeStatus),
    ("pledge", "ck_pledge_valuation_method"): tuple(ValuationMethod),
    ("instruction", "ck_instruction_type"): tuple(InstructionType),
    ("instruction", "ck_instruction_status"): tuple(InstructionStatus),
    ("pledge_event", "ck_pledge_event_kind"): tuple(DecisionKind),
    ("certificate", "ck_certificate_status"): tuple(CertificateStatus),
    ("trade_price", "ck_trade_price_kind"): tuple(TradeKind),
    ("valuation", "ck_valuation_level"): tuple(ValuationLevel),
    ("valuation", "ck_valuation_error"): tuple(ValuationError),
    ("alert", "ck_alert_kind"): tuple(AlertKind),
    ("alert", "ck_alert_status"): tuple(AlertStatus),
    ("webhook_delivery", "ck_webhook_delivery_status"): tuple(DeliveryStatus),
    ("api_key", "ck_api_key_role"): GRANTED_ROLES,
    ("console_user", "ck_console_user_role"): GRANTED_ROLES,
}


def test_every_check_that_holds_a_vocabulary_lists_its_enum(session: Session) -> None:
    rows = session.execute(
        text("""
            SELECT c.conrelid::regclass::text AS table_name, c.conname, pg_get_constraintdef(c.oid) AS definition
              FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE c.contype = 'c' AND n.nspname = current_schema()""")
    ).all()
    found = {(r.table_name, r.conname): r.definition for r in rows}
    for (table, name), members in CHECKS.items():
        assert (table, name) in found, f"{table}.{name} is not in the migrated database"
        # PostgreSQL writes `col = ANY (ARRAY['a'::text, 'b'::text])` (or `col IS NULL OR ...`).
        listed = tuple(re.findall(r"'([^']*)'::text", found[table, name]))
        assert listed == tuple(str(m) for m in members), f"{table}.{name}: {found[table, name]}"


# A column compared to a quoted word in SQL -> the vocabularies such a column holds (its name is all the
# scan knows of it, so a word must be a member of one of them).
STATUSES = (PledgeStatus, InstructionStatus, CertificateStatus, BlockStatus, AccountStatus, AlertStatus,
            DeliveryStatus)  # fmt: skip
COLUMNS: dict[str, tuple[type[StrEnum], ...]] = {
    "status": STATUSES,
    "from_status": (BlockStatus,),
    "to_status": (BlockStatus,),
    "kind": (TradeKind, AlertKind, EventKind, DecisionKind, PartyKind),
    "type": (InstructionType,),
    "level": (ValuationLevel,),
    "valuation_method": (ValuationMethod,),
    "method": (ValuationMethod,),
    "role": (Role,),
    "actor_role": (Role,),
    "error": (ValuationError,),
    "event": (WebhookEvent,),
}
_WORDS = r"'[a-z_.]*'(?:\s*,\s*'[a-z_.]*')*"
_COMPARED = re.compile(
    r"\b(?:\w+\.)?("
    + "|".join(COLUMNS)
    + r")\s*(?:=|<>|!=|NOT IN|IN)\s*(\(\s*"
    + _WORDS
    + r"\s*\)|"
    + _WORDS
    + ")"
)


def sql_words(source: str) -> list[tuple[str, str]]:
    """(column, word) for each word a column is compared to in the text; `{...}` placeholders are not
    words, so SQL built from the enums is left to the type checker."""
    return [
        (column, w) for column, words in _COMPARED.findall(source) for w in re.findall(r"'([^']*)'", words)
    ]


def test_the_scan_finds_what_sql_compares() -> None:
    assert sql_words("WHERE h.status = 'held' AND p.status NOT IN ('pending', 'active')") == [
        ("status", "held"), ("status", "pending"), ("status", "active")]  # fmt: skip
    assert sql_words("i.type IN ('register', 'top_up')") == [("type", "register"), ("type", "top_up")]
    assert sql_words("WHERE status = '{B.HELD}'") == []


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "registry").rglob("*.py")))
def test_sql_in_the_code_names_only_members(path: str) -> None:
    source = (ROOT / path).read_text()
    for column, word in sql_words(source):
        members = {str(m) for vocabulary in COLUMNS[column] for m in vocabulary}
        assert word in members, f"{path}: {column} compared to '{word}', not a member of its vocabularies"


def test_the_copies_lower_layers_keep_equal_the_enums() -> None:
    # valuation and alert sit below pledge (pledge imports them), so they name the pledge status they read.
    assert valuation_service.ACTIVE_PLEDGE == alert_service.ACTIVE_PLEDGE == PledgeStatus.ACTIVE


def test_what_a_bank_may_ask_for_is_what_an_active_pledge_takes() -> None:
    # A subset of InstructionType: a Literal keeps the schema's name and message; held to the table here.
    asked = get_args(InstructionCreate.model_fields["type"].annotation)
    assert set(asked) == set(REQUESTABLE[PledgeStatus.ACTIVE])
