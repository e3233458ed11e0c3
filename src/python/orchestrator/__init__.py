"""Brings the stack up: the Python replacement for the Aspire AppHost."""
