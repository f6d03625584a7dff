"""Invariant tests commit for real: races, deferred checks and tampering only show at commit.

The live server fixtures (`live`, `live_url`) are in tests/conftest.py."""
