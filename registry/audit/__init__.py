"""The audit trail: append-only, hash-chained events for every change of ownership or status."""
