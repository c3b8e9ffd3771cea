"""Custody: the CLI shell, typed settings and the shared application context."""
