"""Migrations of the orders app (orders, lines, refunds, payment events)."""
