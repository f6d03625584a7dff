"""A bank's developer generates a client from /openapi.json with openapi-python-client and walks through a
pledge with it, as docs/api-guide.md does with curl: against the real app on a loopback port (`live`), as
the restricted database role, typed errors included.

The client is generated into the test's tmp dir (a few seconds; nothing is cached elsewhere) with the one
setting a bank needs: `application/pdf` read as bytes (the generator knows no PDF). Generation must give no
warning at all with that setting."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import Engine

from registry.calendar import exchange_day
from registry.clock import SystemClock
from registry.db import unit_of_work
from registry.ledger import service as ledger
from registry.ledger.models import PartyKind
from registry.ledger.uscc import make as uscc
from registry.principal import SYSTEM, Actor, Role
from registry.valuation import prices
from registry.valuation.models import TradeKind
from tests import factories as f
from tests.conftest import Live

PACKAGE = "registry_client"
CONFIG = """\
post_hooks: []
content_type_overrides:
  application/pdf: application/octet-stream
"""


@dataclass
class World:
    """Demo-like: the demo's bank and pledgor, two named exchange operators, a day's price."""

    bank_key: str
    pledgor_key: str
    operator_1_key: str
    operator_2_key: str
    account_number: str
    credit_code: str


def demo_like(engine: Engine) -> World:
    now = SystemClock().now()  # the live app runs on the real clock: the loan and the price are today's
    actor = Actor(SYSTEM, now, request_id="generated-client")
    with unit_of_work(engine) as s:
        exchange = f.the_exchange(s)
        bank = ledger.create_party(s, actor, name="蜀都银行成都分行 Shudu Bank Chengdu Branch",
                                   kind=PartyKind.BANK, credit_code=uscc("91510100MA62A1B2C"))  # fmt: skip
        pledgor = ledger.create_party(s, actor, name="蜀南林业碳汇有限公司 Shunan Forestry Carbon Sink Co.",
                                      kind=PartyKind.ENTERPRISE, credit_code=uscc("91511500MA6G7H8J9"))  # fmt: skip
        f.account(s, bank)  # where a disposal's units go
        account = f.account(s, pledgor)
        f.issue(s, account.id, 25_000)
        prices.record_trades(s, actor, [prices.Trade("CCER", exchange_day(now), Decimal("68.50"), 12_000,
                                                     TradeKind.LISTED)])  # fmt: skip
        assert pledgor.credit_code is not None
        return World(
            bank_key=f.key(s, bank, Role.BANK),
            pledgor_key=f.key(s, pledgor, Role.HOLDER, operator="shunan-forestry"),
            operator_1_key=f.key(s, exchange, Role.EXCHANGE, operator="demo-operator-1"),
            operator_2_key=f.key(s, exchange, Role.EXCHANGE, operator="demo-operator-2"),
            account_number=account.number,
            credit_code=pledgor.credit_code,
        )


def generate(url: str, into: Path) -> str:
    """/openapi.json as the app serves it, made into a client package under `into`; the generator's
    output (which must name no warning)."""
    spec = into / "openapi.json"
    spec.write_bytes(httpx.get(f"{url}/openapi.json", timeout=10).raise_for_status().content)
    (into / "config.yaml").write_text(CONFIG)
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [str(generator), "generate", "--path", str(spec), "--output-path", str(into / PACKAGE),
         "--meta", "none", "--config", str(into / "config.yaml")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@pytest.fixture
def client_package(live: Live, tmp_path: Path) -> Iterator[tuple[ModuleType, str]]:
    output = generate(live.url, tmp_path)
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module(PACKAGE), output
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


class Bank:
    """The generated client as a bank's code would use it: `call("pledges", "create_pledge", ...)`."""

    def __init__(self, package: ModuleType, url: str) -> None:
        self.package, self.url = package, url

    def client(self, key: str) -> Any:
        return self.package.AuthenticatedClient(base_url=self.url, token=key, raise_on_unexpected_status=True)

    def model(self, name: str) -> Any:
        return getattr(importlib.import_module(f"{PACKAGE}.models"), name)

    def call(self, tag: str, operation: str, key: str, **arguments: Any) -> Any:
        module = importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}")
        return module.sync_detailed(client=self.client(key), **arguments)

    def ok(self, tag: str, operation: str, key: str, **arguments: Any) -> Any:
        response = self.call(tag, operation, key, **arguments)
        assert response.status_code < 300, (operation, response.status_code, response.content)
        return response.parsed

    def problem(self, status: int, tag: str, operation: str, key: str, **arguments: Any) -> Any:
        response = self.call(tag, operation, key, **arguments)
        assert response.status_code == status, (operation, response.status_code, response.content)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.parsed
        assert isinstance(problem, self.model("Problem")), f"{operation}: {status} not parsed as a Problem"
        assert problem.status == status
        return problem


def test_a_bank_walks_a_pledge_through_a_generated_client(
    live: Live, committed_engine: Engine, client_package: tuple[ModuleType, str]
) -> None:
    package, output = client_package
    assert "warning" not in output.lower(), output
    world = demo_like(committed_engine)
    api, m = Bank(package, live.url), Bank(package, live.url).model
    bank, pledgor = world.bank_key, world.pledgor_key
    op1, op2 = world.operator_1_key, world.operator_2_key

    # 1. The pledgor's account, from its number and credit code.
    found = api.ok(
        "reference", "lookup_account", bank, number=world.account_number, credit_code=world.credit_code
    )
    assert found.number == world.account_number and found.party_name.startswith("蜀南林业")

    # 2. The bank asks; nothing is held yet. A retry with the same key is the same pledge.
    start = date.today()
    body = m("PledgeCreate")(
        pledgor_account_id=found.id,
        borrower_party_id=found.party_id,
        loan=m("LoanIn")(contract_no="蜀都碳汇贷-2026-0100", principal="500000.00", start_date=start,
                         maturity_date=start + timedelta(days=364)),
        collateral=m("CollateralIn")(credit_type="CCER", quantity=10_000),
        terms=m("TermsIn")(max_pledge_rate="0.80", warning_ratio="1.30", disposal_ratio="1.10",
                           valuation_method=m("ValuationMethod").LOWER_OF),
        external_refs=m("ExternalRefs")(pboc_registration_no="0512 3456 7890 1234 9999", bank_ref="LN-2026-0100"),
    )  # fmt: skip
    pledge = api.ok("pledges", "create_pledge", bank, body=body, idempotency_key="LN-2026-0100-pledge")
    assert (pledge.status, pledge.registration_no, pledge.quantity, pledge.held_quantity) == (
        "pending",
        None,
        0,
        0,
    )
    assert [(i.type_, i.status) for i in pledge.instructions] == [("register", "awaiting_consent")]
    assert pledge.loan.principal == "500000.00" and pledge.terms.max_pledge_rate == "0.8000"
    again = api.ok("pledges", "create_pledge", bank, body=body, idempotency_key="LN-2026-0100-pledge")
    assert again.id == pledge.id

    # A second request for the same loan: a typed 409 naming the open pledge.
    refused = api.problem(409, "pledges", "create_pledge", bank, body=body)
    assert refused.code == "loan_already_pledged" and refused.field == "loan.contract_no"
    assert refused.additional_properties["pledge_id"] == str(pledge.id)

    # 3. The pledgor consents: the units are held and the request goes to the exchange.
    request = pledge.instructions[0].id
    consented = api.ok("pledges", "consent_to_instruction", pledgor, instruction_id=request)
    assert (consented.status, consented.consented_by) == ("pending", "shunan-forestry")

    # 4. The exchange confirms, from its queue with the request's valuation beside it.
    queue = api.ok("pledges", "list_instructions", op1, status=m("InstructionStatus").PENDING)
    waiting = next(i for i in queue.items if i.id == request)
    assert waiting.assessment.within_terms is True and waiting.assessment.level == "ok"
    confirmed = api.ok("pledges", "confirm_instruction", op1, instruction_id=request)
    assert (confirmed.status, confirmed.decided_by) == ("confirmed", "demo-operator-1")
    active = api.ok("pledges", "get_pledge", bank, pledge_id=pledge.id)
    assert (active.status, active.quantity) == ("active", 10_000)
    assert re.fullmatch(r"ZY-\d{4}-\d{6}", active.registration_no)
    assert active.valuation.price == "68.50" and active.valuation.coverage_ratio == "1.3700"

    # 5. A top-up (the pledgor consents, the exchange confirms), then a partial release.
    instruction = m("InstructionCreate")
    kind = m("InstructionCreateType")
    top_up = api.ok("pledges", "request_instruction", bank, pledge_id=pledge.id,
                    body=instruction(type_=kind.TOP_UP, quantity=2_000))  # fmt: skip
    assert top_up.status == "awaiting_consent"
    assert api.ok("pledges", "consent_to_instruction", pledgor, instruction_id=top_up.id).status == "pending"
    assert api.ok("pledges", "confirm_instruction", op2, instruction_id=top_up.id).status == "confirmed"
    release = api.ok("pledges", "request_instruction", bank, pledge_id=pledge.id,
                     body=instruction(type_=kind.RELEASE, quantity=4_000, outstanding_principal="300000.00",
                                      reason="repaid 200,000"))  # fmt: skip
    released = api.ok("pledges", "confirm_instruction", op1, instruction_id=release.id)
    assert (released.status, released.applied_quantity) == ("confirmed", 4_000)

    # 6. A disposal: four eyes. The first operator's confirm records the terms, a second applies them.
    disposal = api.ok("pledges", "request_instruction", bank, pledge_id=pledge.id,
                      body=instruction(type_=kind.DISPOSE, reason="default on the loan"))  # fmt: skip
    reviewed = api.ok("pledges", "confirm_instruction", op1, instruction_id=disposal.id,
                      body=m("ConfirmBody")(price="68.50"))  # fmt: skip
    assert reviewed.status == "pending"
    assert (reviewed.review.by, reviewed.review.price, reviewed.review.proceeds) == (
        "demo-operator-1", "68.50", "548000.00")  # fmt: skip
    same_person = api.problem(409, "pledges", "confirm_instruction", op1, instruction_id=disposal.id)
    assert (
        same_person.code == "invalid_state"
        and same_person.additional_properties["reviewed_by"] == "demo-operator-1"
    )
    disposed = api.ok("pledges", "confirm_instruction", op2, instruction_id=disposal.id)
    assert (disposed.status, disposed.applied_quantity, disposed.price, disposed.proceeds) == (
        "confirmed", 8_000, "68.50", "548000.00")  # fmt: skip
    assert (disposed.decided_by, disposed.reviewed_by) == ("demo-operator-2", "demo-operator-1")
    assert api.ok("pledges", "get_pledge", bank, pledge_id=pledge.id).status == "disposed"

    # Its certificates: every version a page, the latest as the PDF's bytes.
    versions = api.ok("certificates", "list_certificates", bank, pledge_id=pledge.id)
    assert versions.next_cursor is None and [c.status for c in versions.items][-1] == "revoked"
    pdf = api.ok("certificates", "download_certificate", bank, pledge_id=pledge.id)
    assert pdf.payload.read(5) == b"%PDF-"

    # Typed errors: another tenant's or no pledge is a 404 Problem; a malformed query names its field; a
    # wrong key is a 401 with its challenge.
    missing = api.problem(404, "pledges", "get_pledge", bank, pledge_id=uuid4())
    assert missing.code == "not_found" and missing.additional_properties["resource"] == "pledge"
    malformed = api.problem(422, "reference", "lookup_account", bank, number="RA1", credit_code="too short")
    assert malformed.code == "validation_error"
    assert [(e.field, e.type_) for e in malformed.errors] == [("query.credit_code", "string_too_short")]
    nobody = api.call("pledges", "get_pledge", "not-a-key", pledge_id=pledge.id)
    assert nobody.status_code == 401 and nobody.parsed.code == "unauthenticated"
    assert nobody.headers["www-authenticate"].startswith("Bearer")
    # The certificates the confirmations queued are rendered before the database goes (else their
    # rendering logs a failure after the test).
    live.app.state.render_queue.submit(lambda: None).result(timeout=120)
