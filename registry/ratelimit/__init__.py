"""Throttling of public endpoints by failures per client, shared by every app process."""
