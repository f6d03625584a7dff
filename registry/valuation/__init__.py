"""Collateral valuation from trade prices: reference prices, revaluation, pledge-rate checks."""
