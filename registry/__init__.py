"""The pledge registry's domain core: ledger, pledges, valuation, certificates, audit.

Nothing in this package knows about HTTP; `api/` translates requests into calls here.
"""
