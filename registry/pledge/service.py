"""The pledge lifecycle. Registration and top-up are joint applications (共同申请): whichever of the pledgee
bank and the pledgor asks, the other consents; the pledgor's units are held only once the pledgor has
agreed, and only then does the request reach the exchange, which confirms or rejects. Release and
disposal are the bank's to ask; a disposal is applied by a second exchange operator on exactly the terms
the first reviewed.

Each step is one transaction that locks the pledge, then its instruction, then the accounts. Every
instruction is decided at most once (the database refuses to change a decided one), every unit movement
goes through the ledger's primitives (the account chains of the audit trail), and every decision is an
event of the pledge's decision trail naming the person who took it."""

from __future__ import annotations

from registry.pledge.asking import Registered, cancel, consent, decline, register, request
from registry.pledge.deciding import confirm, expire_lapsed, reject
from registry.pledge.rules import Loan, Terms

# The use cases, where callers find them: asking (asking.py), deciding (deciding.py), the steps they share
# (steps.py).
__all__ = [
    "Loan",
    "Registered",
    "Terms",
    "cancel",
    "confirm",
    "consent",
    "decline",
    "expire_lapsed",
    "register",
    "reject",
    "request",
]
