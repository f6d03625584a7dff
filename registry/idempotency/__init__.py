"""Idempotency keys: a retried request returns the first response instead of doing its work twice."""
