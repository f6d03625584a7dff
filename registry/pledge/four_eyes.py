"""Four eyes on a disposal binds its terms: the first operator's confirmation records exactly where the
units go and for how much; a second, different person applies exactly that. Other terms from the second
operator are a new review (with that operator as reviewer), never applied as they stand."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlmodel import Session

from registry.errors import InvalidInput, InvalidState, NotFound
from registry.ledger import repository as ledger_repo
from registry.ledger.models import AccountStatus
from registry.pledge import repository as repo
from registry.pledge.models import Instruction, Pledge

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class DisposalTerms:
    to_account_id: UUID  # the lender's account, or a buyer's at auction
    price: Decimal | None  # per unit
    proceeds: Decimal | None  # collected by the exchange (价款代收代付)

    def as_dict(self) -> dict[str, Any]:
        return {"to_account_id": self.to_account_id, "price": self.price, "proceeds": self.proceeds}


@dataclass(frozen=True, slots=True)
class Offered:
    """What an operator's confirmation says; all None means "the reviewed terms"."""

    buyer_account_id: UUID | None = None
    price: Decimal | None = None
    proceeds: Decimal | None = None

    @property
    def empty(self) -> bool:
        return self.buyer_account_id is None and self.price is None and self.proceeds is None


def reviewed(instruction: Instruction) -> DisposalTerms | None:
    if instruction.reviewed_by is None or instruction.review_to_account_id is None:
        return None
    return DisposalTerms(
        instruction.review_to_account_id, instruction.review_price, instruction.review_proceeds
    )


def resolve(session: Session, pledge: Pledge, instruction: Instruction, offered: Offered) -> DisposalTerms:
    """The complete terms an operator's confirmation means: a buyer named by the exchange (auction), else
    the account the bank named, else the bank's first; proceeds as given, else price × units disposed."""
    if offered.buyer_account_id is not None:
        buyer = ledger_repo.get_account(session, offered.buyer_account_id)
        if buyer is None:
            raise NotFound("account", offered.buyer_account_id, field="buyer_account_id")
        if buyer.status != AccountStatus.ACTIVE:
            raise InvalidInput("buyer_account_id", "the buyer's account is closed")
        if buyer.id == pledge.pledgor_account_id:
            raise InvalidInput("buyer_account_id", "disposal moves units out of the pledgor's account")
        target = buyer.id
    else:
        found = instruction.to_account_id or repo.first_account_of(session, pledge.pledgee_party_id)
        if found is None:
            raise InvalidState("the pledgee bank has no registry account to receive the units; name a buyer")
        target = found
    proceeds = offered.proceeds
    if proceeds is None and offered.price is not None:
        proceeds = (offered.price * _units_disposed(session, pledge, instruction)).quantize(CENT)
    return DisposalTerms(target, offered.price, proceeds)


def record_review(instruction: Instruction, terms: DisposalTerms, reviewer: str, at: Any) -> None:
    instruction.reviewed_by, instruction.reviewed_at = reviewer, at
    instruction.review_to_account_id = terms.to_account_id
    instruction.review_price, instruction.review_proceeds = terms.price, terms.proceeds


def _units_disposed(session: Session, pledge: Pledge, instruction: Instruction) -> int:
    if instruction.quantity is not None:
        return instruction.quantity
    if instruction.blocks:
        return sum(b["serial_end"] - b["serial_start"] + 1 for b in instruction.blocks)
    return repo.frozen_quantity(session, pledge.id)
