"""Retention: rules, legal holds, write-once storage and purge."""
