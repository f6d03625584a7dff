"""Quarterly reports: a bank's collateral book and the exchange's pledge statistics."""
