"""Alerts to lending banks: margin, maturity and stale prices; delivered to their webhooks."""
