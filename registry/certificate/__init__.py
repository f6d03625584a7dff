"""Pledge certificates: issued when the exchange confirms, rendered to PDF, verifiable by anyone."""
