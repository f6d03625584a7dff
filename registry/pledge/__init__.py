"""Pledges: a bank asks, the exchange confirms; units are held, frozen, released or disposed."""
